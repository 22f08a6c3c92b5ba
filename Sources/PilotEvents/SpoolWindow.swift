/// Which spooled messages a forwarder sends next, as a pure state machine:
/// in sequence order, at most `maxInFlight` beyond what the hub has
/// acknowledged, and from the oldest unacknowledged one again after every
/// reconnect (the hub drops what it already stored as duplicates). Counts
/// what goes out a second time in this run.
public struct SpoolWindow: Sendable, Equatable {
    public let maxInFlight: UInt64
    /// The highest sequence sent on the current connection.
    public private(set) var sentUpTo: UInt64
    /// The highest sequence sent in this run (to count resends).
    private var highestSent: UInt64
    public private(set) var resent = 0

    public init(acknowledged: UInt64, maxInFlight: UInt64 = 20_000) {
        self.maxInFlight = maxInFlight
        sentUpTo = acknowledged
        highestSent = acknowledged // resends count from this run only
    }

    /// A new connection: nothing is in flight on it, so everything the hub
    /// has not acknowledged goes again.
    public mutating func reconnected(acknowledged: UInt64) {
        sentUpTo = acknowledged
    }

    /// Whether messages after `sentUpTo` should go now.
    public func hasRoom(lastSequence: UInt64, acknowledged: UInt64) -> Bool {
        sentUpTo < lastSequence && sentUpTo &- min(acknowledged, sentUpTo) < maxInFlight
    }

    /// Messages after `sentUpTo`, up to `last`, went out.
    public mutating func sent(upTo last: UInt64) {
        guard last > sentUpTo else { return }
        if highestSent > sentUpTo { resent += Int(min(highestSent, last) - sentUpTo) }
        sentUpTo = last
        highestSent = max(highestSent, last)
    }
}
