/// A reliable, ordered message channel over an unreliable datagram path
/// (the tunnel), as a pure state machine: messages in, segments out, time
/// passed in as microseconds of a monotonic clock.
///
/// - Messages are cut into fragments so that no segment exceeds
///   `maxSegmentBytes`; each fragment has its own 32-bit sequence number and
///   FIRST/LAST flags, and the receiver delivers whole messages in order.
/// - Acknowledgements are cumulative plus up to eight selective (SACK)
///   ranges, and carry the receiver's free window (flow control).
/// - The retransmission timeout follows RFC 6298 (smoothed RTT and variance,
///   Karn's rule, doubling backoff); three later segments acknowledged past
///   a hole retransmit it at once (fast retransmit).
///
/// Segment layout (all integers big-endian):
///
///     data: 1 | flags u8 (1 first, 2 last) | seq u32 | payload
///     ack:  2 | cumulative u32 (next expected) | window u16 | count u8 | (start u32, end u32)*
public struct ReliableChannel: Sendable {
    public struct Configuration: Sendable {
        /// Largest segment handed to the tunnel (header included).
        public var maxSegmentBytes = 1200
        /// Segments in flight at most, whatever the peer allows.
        public var sendWindow = 512
        /// Out-of-order segments the receiver buffers (advertised as window).
        public var receiveWindow = 1024
        /// Messages waiting to be sent before `send` refuses more (backpressure).
        public var sendBufferMessages = 4096
        public var maxMessageBytes = 16 << 20
        public var initialRTO: Int64 = 1_000_000
        public var minRTO: Int64 = 50_000
        /// Low for a transport: after an outage (a peer restarting) the
        /// next retransmission, which finds out, is never far off.
        public var maxRTO: Int64 = 3_000_000
        /// An ack is sent at most this long after data arrived,
        public var ackDelay: Int64 = 5_000
        /// or at once when this many data segments arrived since the last
        /// (like TCP's ack of every second full segment): a window of bulk
        /// data is acknowledged as it streams in, so the sender's window
        /// never stalls for a whole `ackDelay`.
        public var ackEvery = 16
        public init() {}
    }

    public struct Statistics: Sendable, Equatable {
        public var segmentsSent = 0
        public var retransmissions = 0
        public var fastRetransmissions = 0
        public var timeouts = 0
        public var duplicatesReceived = 0
        public var messagesDelivered = 0
    }

    static let dataKind: UInt8 = 1
    static let ackKind: UInt8 = 2
    static let first: UInt8 = 1
    static let last: UInt8 = 2
    static let dataHeaderBytes = 6
    static let maxSackRanges = 8

    private struct InFlight: Sendable {
        var segment: [UInt8]
        var sentAt: Int64
        var retransmitted: Bool
        var sacked = false
        var sackedPast = 0
        /// Fast retransmission happens once per segment; after that only the
        /// timeout resends it (else every ack would resend it again).
        var fastRetransmitted = false
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()

    // Sending.
    private var queue: [[UInt8]] = []          // whole messages not yet cut
    private var queueHead = 0
    private var fragments: [[UInt8]] = []      // cut, not yet sent
    private var nextSequence: UInt32 = 0
    private var inFlight: [UInt32: InFlight] = [:]
    /// How many of `inFlight` the receiver has already (selectively) acked:
    /// those no longer occupy the path, so they do not count against the
    /// congestion window (RFC 6675's "pipe").
    private var sackedInFlight = 0
    private var lowestUnacked: UInt32 = 0
    private var peerWindow: Int
    private var retransmitDue: [UInt32] = []
    private var lossEpochEnds: UInt32?
    private var rtoDeadline: Int64?

    // Congestion control (AIMD with slow start, in segments): a burst never
    // exceeds what the path has shown it can take.
    public private(set) var congestionWindow: Double = 16
    private var slowStartThreshold: Double = .infinity

    // RTT estimation (RFC 6298).
    private var smoothedRTT: Int64?
    private var rttVariance: Int64 = 0
    public private(set) var rto: Int64

    // Receiving.
    private var expected: UInt32 = 0
    private var outOfOrder: [UInt32: (flags: UInt8, payload: ArraySlice<UInt8>)] = [:]
    private var assembling: [UInt8] = []
    private var assemblingStarted = false
    private var ackDue: Int64?
    private var unackedArrivals = 0

    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.maxSegmentBytes > Self.dataHeaderBytes + 16, "segments too small to carry data")
        self.configuration = configuration
        rto = configuration.initialRTO
        peerWindow = configuration.sendWindow
    }

    // MARK: Sending

    public var maxPayloadPerSegment: Int { configuration.maxSegmentBytes - Self.dataHeaderBytes }

    /// Queues a message. Refuses when the send buffer is full: the caller
    /// waits (`canSend`) instead of growing memory without bound.
    public mutating func send(_ message: [UInt8]) throws(ReliableChannelError) {
        guard message.count <= configuration.maxMessageBytes else {
            throw .messageTooLarge(message.count, limit: configuration.maxMessageBytes)
        }
        guard canSend else { throw .sendBufferFull }
        queue.append(message)
    }

    public var canSend: Bool { queue.count - queueHead < configuration.sendBufferMessages }

    /// Messages accepted by `send` and not yet fully sent.
    public var queuedMessages: Int { queue.count - queueHead }

    /// Nothing queued, nothing unacknowledged.
    public var isIdle: Bool { queue.count == queueHead && fragments.isEmpty && inFlight.isEmpty }

    /// Segments sent and not yet acknowledged.
    public var hasUnacknowledged: Bool { !inFlight.isEmpty }

    public var bytesInFlight: Int { inFlight.values.reduce(0) { $0 + $1.segment.count } }

    /// Segments to transmit now: acks, retransmissions, then new data while
    /// the window allows.
    public mutating func poll(now: Int64) -> [[UInt8]] {
        var out: [[UInt8]] = []
        if let deadline = ackDue, deadline <= now {
            out.append(makeAck())
            ackDue = nil
        }
        if let deadline = rtoDeadline, deadline <= now, !inFlight.isEmpty {
            // Timeout: resend every hole that has waited a full RTO (oldest
            // first, a bounded batch), then back off.
            statistics.timeouts += 1
            slowStartThreshold = max(2, congestionWindow / 2)
            congestionWindow = 4
            let expired = inFlight.filter { !$0.value.sacked && now - $0.value.sentAt >= rto }.keys
                .sorted { Self.before($0, $1) }.prefix(32)
            retransmitDue.insert(contentsOf: expired.isEmpty ? [oldestUnsacked()].compactMap { $0 } : Array(expired), at: 0)
            rto = min(rto * 2, configuration.maxRTO)
            rtoDeadline = nil
        }
        for sequence in retransmitDue {
            guard var entry = inFlight[sequence], !entry.sacked else { continue }
            entry.sentAt = now
            entry.retransmitted = true
            entry.sackedPast = 0
            inFlight[sequence] = entry
            statistics.retransmissions += 1
            statistics.segmentsSent += 1
            out.append(entry.segment)
        }
        retransmitDue.removeAll()
        while inFlight.count < min(configuration.sendWindow, peerWindow), inFlight.count - sackedInFlight < max(1, Int(congestionWindow)) {
            if fragments.isEmpty { cutNextMessage() }
            guard !fragments.isEmpty else { break }
            let fragment = fragments.removeFirst()
            var segment = fragment
            segment.replaceSubrange(2..<6, with: nextSequence.bigEndianBytes)
            inFlight[nextSequence] = InFlight(segment: segment, sentAt: now, retransmitted: false)
            nextSequence &+= 1
            statistics.segmentsSent += 1
            out.append(segment)
        }
        if inFlight.isEmpty {
            rtoDeadline = nil
        } else if rtoDeadline == nil || rtoDeadline! <= now {
            rtoDeadline = now + rto
        }
        return out
    }

    /// When `poll` next has work even if nothing arrives.
    public var nextDeadline: Int64? {
        switch (ackDue, rtoDeadline) {
        case let (a?, r?): min(a, r)
        case let (a?, nil): a
        case let (nil, r?): r
        case (nil, nil): nil
        }
    }

    private mutating func cutNextMessage() {
        guard queueHead < queue.count else { return }
        let message = queue[queueHead]
        queueHead += 1
        if queueHead > 1024 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        let size = maxPayloadPerSegment
        var offset = 0
        repeat {
            let end = min(offset + size, message.count)
            var flags: UInt8 = 0
            if offset == 0 { flags |= Self.first }
            if end == message.count { flags |= Self.last }
            fragments.append([Self.dataKind, flags, 0, 0, 0, 0] + message[offset..<end])
            offset = end
        } while offset < message.count
    }

    private func oldestUnsacked() -> UInt32? {
        var best: UInt32?
        for (sequence, entry) in inFlight where !entry.sacked {
            if best == nil || Self.before(sequence, best!) { best = sequence }
        }
        return best
    }

    // MARK: Receiving

    /// Takes one segment from the peer; returns the messages now complete,
    /// in order. Malformed segments are refused with a typed error and
    /// change nothing.
    public mutating func receive(_ segment: [UInt8], now: Int64) throws(WireError) -> [[UInt8]] {
        guard let kind = segment.first else { throw .truncated(what: "reliable segment") }
        switch kind {
        case Self.dataKind:
            return try receiveData(segment, now: now)
        case Self.ackKind:
            try receiveAck(segment, now: now)
            return []
        default:
            throw .malformed("unknown reliable segment kind \(kind)")
        }
    }

    private mutating func receiveData(_ segment: [UInt8], now: Int64) throws(WireError) -> [[UInt8]] {
        guard segment.count >= Self.dataHeaderBytes else { throw .truncated(what: "data segment") }
        let flags = segment[1]
        guard flags & ~(Self.first | Self.last) == 0 else { throw .malformed("unknown data flags \(flags)") }
        let sequence = segment[2..<6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        if ackDue == nil { ackDue = now + configuration.ackDelay }
        unackedArrivals += 1
        if unackedArrivals >= configuration.ackEvery { ackDue = now }
        let distance = sequence &- expected
        guard distance < UInt32(configuration.receiveWindow) else {
            // Already delivered (or absurdly far ahead): ack again so the sender stops.
            statistics.duplicatesReceived += 1
            ackDue = now
            return []
        }
        guard outOfOrder[sequence] == nil else {
            statistics.duplicatesReceived += 1
            return []
        }
        if distance != 0 { ackDue = now } // a hole: tell the sender at once
        outOfOrder[sequence] = (flags, segment[Self.dataHeaderBytes...])
        var delivered: [[UInt8]] = []
        while let next = outOfOrder.removeValue(forKey: expected) {
            expected &+= 1
            if next.flags & Self.first != 0 {
                assembling.removeAll(keepingCapacity: true)
                assemblingStarted = true
            }
            guard assemblingStarted else { continue } // a tail without its head cannot happen in order; drop it
            assembling.append(contentsOf: next.payload)
            if assembling.count > configuration.maxMessageBytes {
                assembling.removeAll()
                assemblingStarted = false
                throw .malformed("reassembled message exceeds \(configuration.maxMessageBytes) bytes")
            }
            if next.flags & Self.last != 0 {
                delivered.append(assembling)
                assembling = []
                assemblingStarted = false
            }
        }
        statistics.messagesDelivered += delivered.count
        return delivered
    }

    private mutating func makeAck() -> [UInt8] {
        unackedArrivals = 0
        var ranges: [(UInt32, UInt32)] = []
        let buffered = outOfOrder.keys.sorted { Self.before($0, $1) }
        for sequence in buffered {
            if let lastRange = ranges.last, lastRange.1 == sequence {
                ranges[ranges.count - 1].1 = sequence &+ 1
            } else if ranges.count < Self.maxSackRanges {
                ranges.append((sequence, sequence &+ 1))
            } else {
                break
            }
        }
        let window = UInt16(clamping: max(0, configuration.receiveWindow - outOfOrder.count))
        var segment: [UInt8] = [Self.ackKind] + expected.bigEndianBytes + [UInt8(window >> 8), UInt8(window & 0xFF), UInt8(ranges.count)]
        for (start, end) in ranges { segment += start.bigEndianBytes + end.bigEndianBytes }
        return segment
    }

    private mutating func receiveAck(_ segment: [UInt8], now: Int64) throws(WireError) {
        guard segment.count >= 8 else { throw .truncated(what: "ack segment") }
        let count = Int(segment[7])
        guard count <= Self.maxSackRanges, segment.count == 8 + count * 8 else { throw .malformed("ack segment length does not match its \(count) ranges") }
        let cumulative = segment[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        // An ack for data never sent is forged or corrupt: ignore it whole.
        guard !Self.before(nextSequence, cumulative) else { throw .malformed("ack for segments never sent") }
        peerWindow = max(1, Int(segment[5]) << 8 | Int(segment[6]))

        var newestSample: Int64?
        var progressed = false
        var acknowledged = 0
        while Self.before(lowestUnacked, cumulative) {
            if let entry = inFlight.removeValue(forKey: lowestUnacked) {
                progressed = true
                acknowledged += 1
                if entry.sacked { sackedInFlight -= 1 }
                if !entry.retransmitted { newestSample = now - entry.sentAt }
            }
            lowestUnacked &+= 1
        }
        if acknowledged > 0 {
            let limit = Double(configuration.sendWindow)
            congestionWindow = congestionWindow < slowStartThreshold
                ? min(limit, congestionWindow + Double(acknowledged))
                : min(limit, congestionWindow + Double(acknowledged) / congestionWindow)
        }
        var highestSacked: UInt32?
        for index in 0..<count {
            let base = 8 + index * 8
            let start = segment[base..<base + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let end = segment[base + 4..<base + 8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard Self.before(start, end), !Self.before(nextSequence, end), end &- start <= UInt32(configuration.sendWindow * 4) else { continue }
            var sequence = start
            while sequence != end {
                if var entry = inFlight[sequence], !entry.sacked {
                    entry.sacked = true
                    sackedInFlight += 1
                    inFlight[sequence] = entry
                    if !entry.retransmitted { newestSample = now - entry.sentAt }
                }
                sequence &+= 1
            }
            if highestSacked == nil || Self.before(highestSacked!, end &- 1) { highestSacked = end &- 1 }
        }
        if let highestSacked {
            // Segments below a SACKed one were passed over: three times means lost.
            // Reordering is not loss: a hole counts as lost only once three
            // later segments were acknowledged past it and it has been out
            // longer than a round trip and a quarter (a simple RACK).
            let reorderAllowance = (smoothedRTT ?? configuration.initialRTO) * 5 / 4 + 2_000
            for (sequence, var entry) in inFlight where !entry.sacked && !entry.fastRetransmitted && Self.before(sequence, highestSacked) {
                entry.sackedPast += 1
                if entry.sackedPast >= 3, now - entry.sentAt > reorderAllowance {
                    entry.fastRetransmitted = true
                    retransmitDue.append(sequence)
                    statistics.fastRetransmissions += 1
                    if lossEpochEnds.map({ !Self.before(sequence, $0) }) ?? true {
                        // One halving per window of loss (like NewReno's recovery).
                        slowStartThreshold = max(2, congestionWindow / 2)
                        congestionWindow = slowStartThreshold
                        lossEpochEnds = nextSequence
                    }
                }
                inFlight[sequence] = entry
            }
        }
        if let sample = newestSample {
            updateRTT(sample: max(1, sample))
        } else if progressed, let smoothed = smoothedRTT {
            // The path delivers again: drop the timeout backoff (RFC 6298 5.7).
            rto = min(max(smoothed + max(1000, 4 * rttVariance), configuration.minRTO), configuration.maxRTO)
        }
        if progressed { rtoDeadline = inFlight.isEmpty ? nil : now + rto }
    }

    private mutating func updateRTT(sample: Int64) {
        if let smoothed = smoothedRTT {
            rttVariance = (3 * rttVariance + abs(smoothed - sample)) / 4
            smoothedRTT = (7 * smoothed + sample) / 8
        } else {
            smoothedRTT = sample
            rttVariance = sample / 2
        }
        rto = min(max(smoothedRTT! + max(1000, 4 * rttVariance), configuration.minRTO), configuration.maxRTO)
    }

    public var smoothedRoundTrip: Int64? { smoothedRTT }

    /// Serial-number comparison (RFC 1982) for wrapping 32-bit sequences.
    static func before(_ a: UInt32, _ b: UInt32) -> Bool {
        a != b && (b &- a) < 0x8000_0000
    }
}

public enum ReliableChannelError: Error, Equatable, CustomStringConvertible {
    case sendBufferFull
    case messageTooLarge(Int, limit: Int)
    /// The stream multiplexer holds as many connections as it takes.
    case tooManyConnections(limit: Int)

    public var description: String {
        switch self {
        case .sendBufferFull: "the send buffer is full; wait until the peer has acknowledged more"
        case let .messageTooLarge(size, limit): "message of \(size) bytes exceeds the limit of \(limit) bytes"
        case let .tooManyConnections(limit): "too many stream connections are open (limit \(limit))"
        }
    }
}
