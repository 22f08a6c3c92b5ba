import PilotCore
@testable import PilotWire
import Testing

/// Two channels joined by a simulated path that loses, duplicates, delays
/// and reorders segments, in virtual time (microseconds).
struct SimulatedPath {
    var a = ReliableChannel()
    var b = ReliableChannel()
    var now: Int64 = 0
    var random: SplitMix64
    var loss = 0.0
    var duplication = 0.0
    var delay: ClosedRange<Int64> = 1000...1000
    var inTransit: [(at: Int64, toB: Bool, segment: [UInt8])] = []
    var deliveredToB: [[UInt8]] = []
    var deliveredToA: [[UInt8]] = []
    var maxSegmentSeen = 0

    init(seed: UInt64) { random = SplitMix64(state: seed) }

    mutating func transmit(_ segments: [[UInt8]], toB: Bool) {
        for segment in segments {
            maxSegmentSeen = max(maxSegmentSeen, segment.count)
            if Double.random(in: 0..<1, using: &random) < loss { continue }
            let copies = Double.random(in: 0..<1, using: &random) < duplication ? 2 : 1
            for _ in 0..<copies {
                inTransit.append((now + Int64.random(in: delay, using: &random), toB, segment))
            }
        }
    }

    /// Runs until `done` or the step budget runs out; returns whether done.
    mutating func run(maxSteps: Int = 2_000_000, until done: (SimulatedPath) -> Bool) throws -> Bool {
        for _ in 0..<maxSteps {
            transmit(a.poll(now: now), toB: true)
            transmit(b.poll(now: now), toB: false)
            if done(self) { return true }
            // Advance to the next event: a segment arriving or a timer.
            let nextArrival = inTransit.map(\.at).min()
            let nextTimer = [a.nextDeadline, b.nextDeadline].compactMap { $0 }.min()
            guard let next = [nextArrival, nextTimer].compactMap({ $0 }).min() else { return done(self) }
            now = max(now, next)
            let arriving = inTransit.enumerated().filter { $0.element.at <= now }
            inTransit.removeAll { $0.at <= now }
            for (_, item) in arriving {
                if item.toB { deliveredToB += try b.receive(item.segment, now: now) } else { deliveredToA += try a.receive(item.segment, now: now) }
            }
        }
        return false
    }
}

func message(_ index: Int, size: Int = 40) -> [UInt8] {
    var bytes = Array(String(index).utf8)
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: index &+ bytes.count)) }
    return bytes
}

@Suite struct ReliableChannelTests {
    @Test func deliversInOrderOverAPerfectPath() throws {
        var path = SimulatedPath(seed: 1)
        for index in 0..<1000 { try path.a.send(message(index)) }
        #expect(try path.run { $0.deliveredToB.count == 1000 && $0.a.isIdle })
        #expect(path.deliveredToB == (0..<1000).map { message($0) })
        #expect(path.a.statistics.retransmissions == 0)
    }

    @Test(arguments: [UInt64(7), 8])
    func tenThousandMessagesSurviveLossDuplicationAndReordering(seed: UInt64) throws {
        var path = SimulatedPath(seed: seed)
        path.loss = 0.10
        path.duplication = 0.05
        path.delay = 500...30_000 // up to 30 ms of jitter reorders heavily
        var sent = 0
        // Feed messages as the send buffer allows, like an application would.
        var steps = 0
        while path.deliveredToB.count < 10_000, steps < 200 {
            while sent < 10_000, path.a.canSend {
                try path.a.send(message(sent, size: sent % 7 == 0 ? 3000 : 60)) // some need fragments
                sent += 1
            }
            _ = try path.run(maxSteps: 20_000) { $0.deliveredToB.count == 10_000 }
            steps += 1
        }
        #expect(path.deliveredToB.count == 10_000)
        print("10,000 messages through 10 % loss and 0.5-30 ms jitter: \(path.now / 1000) ms of virtual time, \(path.a.statistics)")
        #expect(path.deliveredToB == (0..<10_000).map { message($0, size: $0 % 7 == 0 ? 3000 : 60) })
        #expect(path.a.statistics.retransmissions > 0)
        #expect(path.b.statistics.duplicatesReceived > 0)
        #expect(path.maxSegmentSeen <= 1200)
    }

    @Test func fragmentsLargeMessagesUnderTheSegmentLimit() throws {
        var path = SimulatedPath(seed: 3)
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        try path.a.send(big)
        try path.a.send([])
        try path.a.send([42])
        #expect(try path.run { $0.deliveredToB.count == 3 })
        #expect(path.deliveredToB == [big, [], [42]])
        #expect(path.maxSegmentSeen <= path.a.configuration.maxSegmentBytes)
    }

    @Test func theTimeoutBacksOffWhileThePathIsDownAndRecoversAfter() throws {
        var path = SimulatedPath(seed: 4)
        path.loss = 1.0 // everything lost
        try path.a.send(message(1))
        let initial = path.a.rto
        _ = try path.run(maxSteps: 6) { _ in false }
        #expect(path.a.statistics.timeouts >= 3)
        #expect(path.a.rto > initial * 2) // it backs off…
        #expect(path.a.rto == path.a.configuration.maxRTO) // …up to the cap, so an outage's end is found soon
        path.loss = 0
        #expect(try path.run { $0.deliveredToB == [message(1)] && $0.a.isIdle })
    }

    @Test func theRetransmissionTimeoutFollowsTheMeasuredRoundTrip() throws {
        var path = SimulatedPath(seed: 5)
        path.delay = 40_000...40_000 // 80 ms round trip
        for index in 0..<200 { try path.a.send(message(index)) }
        #expect(try path.run { $0.deliveredToB.count == 200 && $0.a.isIdle })
        let srtt = try #require(path.a.smoothedRoundTrip)
        #expect(srtt >= 80_000 && srtt <= 90_000) // plus the ack delay
        #expect(path.a.rto >= path.a.configuration.minRTO && path.a.rto < 1_000_000)
    }

    @Test func theFlowWindowBoundsSegmentsInFlight() throws {
        var configuration = ReliableChannel.Configuration()
        configuration.sendWindow = 16
        var channel = ReliableChannel(configuration: configuration)
        for index in 0..<100 { try channel.send(message(index)) }
        let first = channel.poll(now: 0)
        #expect(first.count == 16)
        #expect(channel.poll(now: 1).isEmpty) // nothing more until acks come
    }

    /// A burst of data is acknowledged as it arrives, every `ackEvery`
    /// segments, not only after the ack delay: the sender's window keeps moving.
    @Test func aBurstIsAcknowledgedEverySixteenSegmentsWithoutWaitingForTheDelay() throws {
        var sender = ReliableChannel(), receiver = ReliableChannel()
        for i in 0..<64 { try sender.send(message(i, size: 1000)) }
        var segments: [[UInt8]] = []
        for _ in 0..<8 { segments += sender.poll(now: 0) } // slow start: 16 segments
        #expect(segments.count == 16)
        for segment in segments.prefix(15) { _ = try receiver.receive(segment, now: 10) }
        #expect(receiver.poll(now: 10).isEmpty) // within the delay, below the count
        _ = try receiver.receive(segments[15], now: 10)
        let acks = receiver.poll(now: 10)
        #expect(acks.count == 1)
        #expect(acks.first?.first == ReliableChannel.ackKind)
        for ack in acks { _ = try sender.receive(ack, now: 20) }
        #expect(sender.poll(now: 20).count == 32) // acked 16, the window grew by 16
    }

    @Test func theSendBufferPushesBack() throws {
        var configuration = ReliableChannel.Configuration()
        configuration.sendBufferMessages = 3
        var channel = ReliableChannel(configuration: configuration)
        for index in 0..<3 { try channel.send(message(index)) }
        #expect(!channel.canSend)
        #expect(throws: ReliableChannelError.sendBufferFull) { try channel.send([1]) }
        configuration.maxMessageBytes = 10
        var small = ReliableChannel(configuration: configuration)
        #expect(throws: ReliableChannelError.messageTooLarge(11, limit: 10)) { try small.send(Array(repeating: 0, count: 11)) }
    }

    @Test func malformedSegmentsAreRefusedAndChangeNothing() throws {
        var channel = ReliableChannel()
        #expect(throws: WireError.truncated(what: "reliable segment")) { try channel.receive([], now: 0) }
        #expect(throws: WireError.malformed("unknown reliable segment kind 9")) { try channel.receive([9], now: 0) }
        #expect(throws: WireError.truncated(what: "data segment")) { try channel.receive([1, 3, 0], now: 0) }
        #expect(throws: WireError.malformed("unknown data flags 8")) { try channel.receive([1, 8, 0, 0, 0, 0], now: 0) }
        #expect(throws: WireError.truncated(what: "ack segment")) { try channel.receive([2, 0, 0], now: 0) }
        #expect(throws: WireError.malformed("ack segment length does not match its 1 ranges")) { try channel.receive([2, 0, 0, 0, 0, 0, 1, 1], now: 0) }
        #expect(throws: WireError.malformed("ack for segments never sent")) { try channel.receive([2, 0, 0, 0, 5, 0, 1, 0], now: 0) }
        // Still works afterwards.
        #expect(try channel.receive([1, 3, 0, 0, 0, 0, 7], now: 0) == [[7]])
    }

    /// A real stream, reordered, duplicated and lossy, with random segments
    /// interleaved: every junk segment is refused or yields nothing, and the
    /// real messages still arrive whole, once each and in order.
    @Test func randomSegmentsNeverCrashOrDeliverGarbageOutOfOrder() throws {
        var path = SimulatedPath(seed: 99)
        path.loss = 0.05
        path.duplication = 0.05
        path.delay = 500...20_000
        let messages = (0..<300).map { message($0, size: $0 % 10 == 0 ? 2500 : 50) } // some in fragments
        for message in messages { try path.a.send(message) }
        var random = SplitMix64(state: 100)
        var refused = 0, taken = 0
        for _ in 0..<20_000 where path.deliveredToB.count < messages.count {
            for _ in 0..<4 {
                let length = Int.random(in: 0...40, using: &random)
                var junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                // Mostly data and ack kinds, so their parsers are what is hit.
                if !junk.isEmpty, Bool.random(using: &random) { junk[0] = Bool.random(using: &random) ? 1 : 2 }
                if junk.count >= 6, junk[0] == 1 {
                    if Bool.random(using: &random) { junk[1] &= 3 } // valid flags half the time
                    // This layer does not authenticate (the tunnel does): a
                    // segment inside the receive window would be data to it.
                    // Junk claims sequence numbers half the number space away.
                    junk[2] |= 0x80
                }
                do {
                    let delivered = try path.b.receive(junk, now: path.now)
                    #expect(delivered.isEmpty, "junk \(junk) delivered \(delivered)")
                    taken += 1
                } catch {
                    refused += 1
                }
            }
            _ = try path.run(maxSteps: 1) { $0.deliveredToB.count == messages.count }
        }
        #expect(path.deliveredToB.count == messages.count)
        let misplaced = zip(path.deliveredToB, messages).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(misplaced == nil, "message \(misplaced ?? 0) is not the one sent there")
        #expect(refused > 1000) // malformed junk was refused…
        #expect(taken > 200) // …and well-formed junk was taken and ignored
    }

    @Test func sequenceNumbersCompareAcrossTheWrap() throws {
        #expect(ReliableChannel.before(UInt32.max, 0))
        #expect(!ReliableChannel.before(0, UInt32.max))
        #expect(ReliableChannel.before(5, 6))
        #expect(ReliableChannel.before(UInt32.max - 5, 10))
        #expect(!ReliableChannel.before(10, UInt32.max - 5))
        #expect(!ReliableChannel.before(7, 7))
        // Half the number space is "later"; the other half "earlier".
        #expect(ReliableChannel.before(0, 0x7FFF_FFFF))
        #expect(!ReliableChannel.before(0, 0x8000_0000))
        // Any b less than half the space after a, wrapping or not, is after it.
        var random = SplitMix64(state: 6)
        let pairs = (0..<10_000).map { _ in
            let a = UInt32.random(in: 0...UInt32.max, using: &random)
            return (a, a &+ UInt32.random(in: 1...0x7FFF_FFFF, using: &random))
        }
        let wrong = pairs.first { !(ReliableChannel.before($0.0, $0.1) && !ReliableChannel.before($0.1, $0.0)) }
        #expect(wrong == nil, "\(String(describing: wrong)) compare the wrong way")
        #expect(pairs.contains { $0.0 > $0.1 }) // some of them wrap
        // As the channel uses it: with nothing sent (next sequence 0), an ack
        // up to UInt32.max lies before 0 across the wrap, so it is an old
        // ack and taken; an ack up to 1 is for segments never sent.
        var channel = ReliableChannel()
        #expect(try channel.receive([2, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 0], now: 0).isEmpty)
        #expect(throws: WireError.malformed("ack for segments never sent")) { try channel.receive([2, 0, 0, 0, 1, 0, 1, 0], now: 0) }
    }
}
