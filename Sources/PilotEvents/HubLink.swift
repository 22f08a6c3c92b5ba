internal import PilotCore

/// The connection of a forwarder or a subscription to its hub, as a pure
/// state machine: when to (re)connect, with backoff; when to probe a quiet
/// connection; whether the hub is answering; the last error a user should
/// see. Times are microseconds on a monotonic clock, passed in.
public struct HubLink: Sendable, Equatable {
    public struct Timing: Sendable, Equatable {
        /// The first retry after a failure, doubled after each up to `maxBackoff`.
        public var initialBackoff: Int64 = 500_000
        public var maxBackoff: Int64 = 5_000_000
        /// A connection quiet this long is probed (PING), so that a hub that
        /// restarted and forgot it answers with a reset within seconds.
        public var probeAfter: Int64 = 2_000_000
        /// A connected hub heard from within this long is answering.
        public var answeringWithin: Int64 = 5_000_000
        /// A retry comes after between (1 - jitter) and all of the backoff,
        /// at random: the nodes a hub restart cut off together do not all
        /// come back in the same instant, again and again.
        public var jitter = 0.5
        public init() {}
    }

    public enum State: Sendable, Equatable {
        case idle
        case connecting
        case connected
    }

    public let timing: Timing
    public private(set) var state: State = .idle
    /// What went wrong last, until the hub answers again.
    public private(set) var lastError: String?
    private var retryAt: Int64 = 0
    private var backoff: Int64
    private var lastHeard: Int64 = 0
    private var lastProbe: Int64 = 0
    private var randomState: UInt64

    public init(timing: Timing = Timing(), seed: UInt64 = .random(in: 0...UInt64.max)) {
        self.timing = timing
        backoff = timing.initialBackoff
        randomState = seed
    }

    /// Whether to start connecting now (the caller has something to send or
    /// a subscription to hold); if so, the link is connecting. `force`
    /// ignores the backoff (a user is waiting for the answer).
    public mutating func shouldConnect(now: Int64, force: Bool = false) -> Bool {
        guard state == .idle, force || now >= retryAt else { return false }
        state = .connecting
        return true
    }

    /// The stream to the hub is open. The hub has not answered yet: its
    /// refusal of an untrusted node comes as a reset of this connection.
    public mutating func connected(now: Int64) {
        state = .connected
        lastHeard = now
        lastProbe = now
    }

    /// Bytes came from the hub: it answers, so what went wrong before is over.
    public mutating func heard(now: Int64) {
        lastHeard = now
        lastError = nil
        backoff = timing.initialBackoff
    }

    /// The attempt or the connection failed: retry after the backoff.
    public mutating func failed(_ reason: String, now: Int64) {
        state = .idle
        lastError = reason
        var random = SplitMix64(state: randomState)
        let early = Int64(Double(backoff) * min(max(timing.jitter, 0), 1) * Double.random(in: 0..<1, using: &random))
        randomState = random.state
        retryAt = now + backoff - early
        backoff = min(backoff * 2, timing.maxBackoff)
    }

    /// The connection ended without fault (an idle timeout): reconnect when needed, at once.
    public mutating func closed() {
        state = .idle
        retryAt = 0
    }

    /// Whether to probe the connection now (and the probe is then sent).
    public mutating func shouldProbe(now: Int64) -> Bool {
        guard state == .connected, now - lastProbe >= timing.probeAfter, now - lastHeard >= timing.probeAfter else { return false }
        lastProbe = now
        return true
    }

    /// Connected, and heard from recently (probes keep a quiet one heard).
    public func isAnswering(now: Int64) -> Bool {
        state == .connected && now - lastHeard < timing.answeringWithin
    }
}
