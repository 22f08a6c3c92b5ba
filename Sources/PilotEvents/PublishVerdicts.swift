/// What a hub said about publications someone waits for (`pilot publish`),
/// as a pure state machine: each waiter covers a range of spool sequences;
/// the hub's `ERR seq reason` lines count against the range holding `seq`,
/// and its `PUBACK n` (which covers refused publications too: they are
/// handled) settles every range ending at or before `n`.
///
/// Bounded: at most `maxWaiting` ranges; past that the oldest is settled
/// at once, unconfirmed, and its publisher is told the messages stay spooled.
public struct PublishVerdicts: Sendable {
    public struct Verdict: Sendable, Equatable {
        public var messages: Int
        public var refused = 0
        /// The first refusal: its sequence and the hub's reason.
        public var firstRefusal: (sequence: UInt64, reason: String)?
        /// Whether the hub handled every message of the range.
        public var confirmed = false

        public init(messages: Int) { self.messages = messages }

        public static func == (a: Verdict, b: Verdict) -> Bool {
            a.messages == b.messages && a.refused == b.refused && a.confirmed == b.confirmed
                && a.firstRefusal?.sequence == b.firstRefusal?.sequence && a.firstRefusal?.reason == b.firstRefusal?.reason
        }

        /// Several ranges' verdicts as one (the batches of one `pilot publish`).
        public static func merged(_ verdicts: [Verdict]) -> Verdict {
            var all = Verdict(messages: 0)
            all.confirmed = true
            for verdict in verdicts {
                all.messages += verdict.messages
                all.refused += verdict.refused
                all.confirmed = all.confirmed && verdict.confirmed
                if all.firstRefusal == nil { all.firstRefusal = verdict.firstRefusal }
            }
            return all
        }
    }

    public typealias ID = UInt64

    private struct Waiting: Sendable {
        var id: ID
        var range: ClosedRange<UInt64>
        var verdict: Verdict
        /// Refusals are counted once: a reconnect sends unacknowledged
        /// messages again, and the hub refuses them again, in order.
        var refusedUpTo: UInt64 = 0
    }

    public let maxWaiting: Int
    /// In sequence order: ranges are spooled, and so expected, in order.
    private var waiting: [Waiting] = []
    private var nextID: ID = 1

    public init(maxWaiting: Int = 4_096) { self.maxWaiting = maxWaiting }

    public var count: Int { waiting.count }

    /// Waits for the hub's word on `range` (just spooled, after every range
    /// expected before). Returns its id and, when the bound pushed one out,
    /// the oldest waiter's id with its verdict so far.
    public mutating func expect(_ range: ClosedRange<UInt64>) -> (id: ID, evicted: (id: ID, verdict: Verdict)?) {
        var evicted: (ID, Verdict)?
        if waiting.count >= maxWaiting {
            let oldest = waiting.removeFirst()
            evicted = (oldest.id, oldest.verdict)
        }
        let id = nextID
        nextID += 1
        waiting.append(Waiting(id: id, range: range, verdict: Verdict(messages: range.count)))
        return (id, evicted)
    }

    /// The hub refused publication `sequence` for `reason`.
    public mutating func refused(_ sequence: UInt64, reason: String) {
        guard let index = waiting.firstIndex(where: { $0.range.contains(sequence) }),
              sequence > waiting[index].refusedUpTo else { return }
        waiting[index].refusedUpTo = sequence
        waiting[index].verdict.refused += 1
        if waiting[index].verdict.firstRefusal == nil { waiting[index].verdict.firstRefusal = (sequence, reason) }
    }

    /// The hub handled every publication up to `sequence`: the verdicts of
    /// the ranges it covers, settled.
    public mutating func acknowledged(upTo sequence: UInt64) -> [(id: ID, verdict: Verdict)] {
        var settled: [(id: ID, verdict: Verdict)] = []
        while let first = waiting.first, first.range.upperBound <= sequence {
            waiting.removeFirst()
            var verdict = first.verdict
            verdict.confirmed = true
            settled.append((first.id, verdict))
        }
        return settled
    }

    /// Stops waiting for `id` (its time is up): the verdict so far, or nil
    /// when it was already settled.
    public mutating func giveUp(_ id: ID) -> Verdict? {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
        return waiting.remove(at: index).verdict
    }
}
