import PilotCore
import PilotCrypto
@testable import PilotWire
import Testing

/// Two multiplexers over a lossy, reordering path (virtual microseconds).
struct MuxPair {
    let aKey = SigningKey.generate(), bKey = SigningKey.generate()
    var a = StreamMux(idSeed: 1), b = StreamMux(idSeed: 2)
    var now: Int64 = 0
    var random = SplitMix64(state: 42)
    var loss = 0.0
    var inFlight: [(at: Int64, toB: Bool, payload: [UInt8])] = []
    var eventsAtB: [StreamMux.Event] = []
    var eventsAtA: [StreamMux.Event] = []
    var trusted = true
    /// Segments that fit together travel as one bundle, as the endpoint sends them.
    var bundling = false
    var duplication = 0.0
    /// Tunnel payloads A sent (a bundle counts once), and the largest either sent.
    var datagramsFromA = 0
    var largestPayload = 0

    mutating func carry(_ outgoing: [StreamMux.Outgoing], fromA: Bool) {
        for out in outgoing { #expect(out.payload.count <= OverlayMessage.maxDatagramData + OverlayMessage.headerBytes) }
        let payloads = bundling ? OverlayMessage.pack(outgoing.map(\.payload)) : outgoing.map(\.payload)
        for payload in payloads {
            if fromA { datagramsFromA += 1 }
            largestPayload = max(largestPayload, payload.count)
            if Double.random(in: 0..<1, using: &random) < loss { continue }
            let copies = Double.random(in: 0..<1, using: &random) < duplication ? 2 : 1
            for _ in 0..<copies { inFlight.append((now + Int64.random(in: 200...20_000, using: &random), fromA, payload)) }
        }
    }

    mutating func step() {
        let deadlines = inFlight.map(\.at) + [a.nextDeadline(), b.nextDeadline()].compactMap { $0 }
        // The muxes' deadlines include idle timeouts (minutes): time moves
        // to the next event, but by at most a second a step.
        now = max(now + 1, min(deadlines.min() ?? now + 1_000, now + 1_000_000))
        let due = inFlight.filter { $0.at <= now }
        inFlight.removeAll { $0.at <= now }
        for item in due {
            for message in try! OverlayMessage.parseAll(item.payload) { deliver(message, toB: item.toB) }
        }
        let (outA, evA) = a.poll(now: now)
        eventsAtA += evA
        carry(outA, fromA: true)
        let (outB, evB) = b.poll(now: now)
        eventsAtB += evB
        carry(outB, fromA: false)
    }

    private mutating func deliver(_ message: OverlayMessage, toB: Bool) {
        let trusted = self.trusted
        if toB {
            let (out, events) = b.receive(message, from: aKey.publicKey, now: now) { _ in trusted }
            eventsAtB += events
            carry(out, fromA: false)
        } else {
            let (out, events) = a.receive(message, from: bKey.publicKey, now: now) { _ in true }
            eventsAtA += events
            carry(out, fromA: true)
        }
    }
}

@Suite struct StreamMuxTests {
    @Test func tenThousandMessagesArriveCompleteAndInOrderDespiteLossAndReordering() throws {
        var pair = MuxPair()
        pair.loss = 0.10
        pair.b.listen(on: 1002)
        let connection = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: 0)
        var sent = 0
        var received: [[UInt8]] = []
        for _ in 0..<400_000 where received.count < 10_000 {
            while sent < 10_000, pair.a.canSend(on: connection) {
                try pair.a.send(Array("message \(sent)".utf8), on: connection)
                sent += 1
            }
            pair.step()
            for event in pair.eventsAtB { if case .message(_, let bytes) = event { received.append(bytes) } }
            pair.eventsAtB.removeAll { if case .message = $0 { true } else { false } }
        }
        #expect(received.count == 10_000)
        #expect(received == (0..<10_000).map { Array("message \($0)".utf8) })
        #expect((pair.a.statistics(connection)?.retransmissions ?? 0) > 0)
    }

    /// Small messages share datagrams (bundles); a lost bundle loses all
    /// of its segments at once, a duplicated one repeats them all, and
    /// the channel still delivers every message once, in order.
    @Test func bundledSegmentsSurviveLossReorderingAndDuplication() throws {
        var pair = MuxPair()
        pair.bundling = true
        pair.loss = 0.10
        pair.duplication = 0.05
        pair.b.listen(on: 1002)
        let connection = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: 0)
        let messages = (0..<10_000).map { Array("metrics/cpu/web-\($0 % 50) {\"cpu_pct\":\($0)}".utf8) }
        var sent = 0
        var received: [[UInt8]] = []
        for _ in 0..<400_000 where received.count < messages.count {
            while sent < messages.count, pair.a.canSend(on: connection) {
                try pair.a.send(messages[sent], on: connection)
                sent += 1
            }
            pair.step()
            for event in pair.eventsAtB { if case .message(_, let bytes) = event { received.append(bytes) } }
            pair.eventsAtB.removeAll { if case .message = $0 { true } else { false } }
        }
        #expect(received == messages)
        let statistics = try #require(pair.a.statistics(connection))
        #expect(statistics.retransmissions > 0)
        #expect(pair.b.statistics(StreamMux.ConnectionID(peer: pair.aKey.publicKey, id: connection.id))?.duplicatesReceived ?? 0 > 0)
        // Each datagram carried many segments, and none outgrew the tunnel's payload.
        #expect(pair.datagramsFromA * 5 < statistics.segmentsSent)
        #expect(pair.largestPayload <= OverlayMessage.maxPayloadBytes)
    }

    @Test func aClosedPortAndAnUntrustedPeerAreRefusedWithAReason() throws {
        var pair = MuxPair()
        let closed = try pair.a.open(to: pair.bKey.publicKey, port: 5000, now: 0)
        try pair.a.send([1], on: closed)
        for _ in 0..<50 { pair.step() }
        #expect(pair.eventsAtA.contains(.reset(closed, StreamReset(.portClosed, "port 5000 is closed"))))
        #expect(!pair.a.isOpen(closed))

        pair.b.listen(on: 1002)
        pair.trusted = false
        let refused = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: pair.now)
        try pair.a.send([2], on: refused)
        for _ in 0..<50 { pair.step() }
        #expect(pair.eventsAtA.contains(.reset(refused, StreamReset(.notTrusted, "not trusted for port 1002"))))
        #expect(!pair.eventsAtB.contains { if case .accepted = $0 { true } else { false } })
    }

    /// Refusals are told apart by their code, never by the words of the
    /// reason; an older peer's reset (a reason only) is a plain close.
    @Test func aResetCarriesItsCodeAndAnOlderPeersResetIsAPlainClose() {
        let refusal = StreamReset(.notTrusted, "not trusted for port 1002")
        #expect(StreamReset(body: refusal.body[...], coded: true) == refusal)
        #expect(refusal.isRefusal && StreamReset(.portClosed, "x").isRefusal)
        #expect(!StreamReset(.unanswered, "x").isRefusal && !StreamReset(.closed, "x").isRefusal)
        let legacy = StreamReset(body: Array("not trusted for port 1002".utf8)[...], coded: false)
        #expect(legacy == StreamReset(.closed, "not trusted for port 1002"))
        #expect(StreamReset(body: [200] + Array("from a newer peer".utf8), coded: true) == StreamReset(.closed, "from a newer peer"))
        #expect(StreamReset(body: [], coded: true) == StreamReset(.closed, ""))
        #expect(StreamReset(.closed, String(repeating: "é", count: 300)).body.count == 201)
    }

    @Test func resetsReachTheOtherSideAndStaleSegmentsAreRefused() throws {
        var pair = MuxPair()
        pair.b.listen(on: 1002)
        let connection = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: 0)
        try pair.a.send([1], on: connection)
        for _ in 0..<20 { pair.step() }
        #expect(pair.eventsAtB.contains { if case .accepted(_, 1002) = $0 { true } else { false } })
        pair.carry(pair.a.reset(connection, reason: "bye"), fromA: true)
        for _ in 0..<20 { pair.step() }
        #expect(pair.eventsAtB.contains { if case .reset(_, StreamReset(.closed, "bye")) = $0 { true } else { false } })
    }

    @Test func aPeerThatRestartedRefusesTheOldConnectionInsteadOfAcceptingItAgain() throws {
        var pair = MuxPair()
        pair.b.listen(on: 1002)
        let connection = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: 0)
        try pair.a.send([1], on: connection)
        for _ in 0..<20 { pair.step() }
        #expect(pair.eventsAtB.contains { if case .message(_, [1]) = $0 { true } else { false } })
        // B restarts: it forgets every connection. A's next segments must be refused.
        pair.b = StreamMux(idSeed: 3)
        pair.b.listen(on: 1002)
        pair.eventsAtB = []
        try pair.a.send([2], on: connection)
        for _ in 0..<50 { pair.step() }
        #expect(!pair.eventsAtB.contains { if case .accepted = $0 { true } else { false } })
        #expect(pair.eventsAtA.contains { if case .reset(connection, StreamReset(.noSuchConnection, "no such connection")) = $0 { true } else { false } })
        #expect(!pair.a.isOpen(connection))
    }
}

@Suite struct StreamMuxTimeoutTests {
    @Test func aPeerThatStopsAnsweringResetsTheConnectionOnlyAfterTheTimeout() throws {
        var pair = MuxPair()
        pair.b.listen(on: 1002)
        let connection = try pair.a.open(to: pair.bKey.publicKey, port: 1002, now: 0)
        // Quiet for a minute, then data that is answered: no reset.
        try pair.a.send(Array("hello".utf8), on: connection)
        while pair.now < 60_000_000 { pair.step() }
        try pair.a.send(Array("again".utf8), on: connection)
        for _ in 0..<50 { pair.step() }
        #expect(!pair.eventsAtA.contains { if case .reset = $0 { true } else { false } })
        // Now the peer is gone: everything towards it is lost.
        pair.loss = 1
        let lostAt = pair.now
        try pair.a.send(Array("into the void".utf8), on: connection)
        var resetAt: Int64?
        while resetAt == nil, pair.now < lostAt + 60_000_000 {
            pair.step()
            for case .reset(let id, let reason) in pair.eventsAtA where id == connection {
                #expect(reason == StreamReset(.unanswered, "the peer did not answer for 20 s"))
                resetAt = pair.now
            }
        }
        let after = try #require(resetAt) - lostAt
        #expect(after >= 20_000_000 && after < 25_000_000, "reset \(after) µs after the peer went away")
    }
}

@Suite struct StreamMuxScheduleTests {
    /// The idle timeout is a deadline of its own: a quiet connection is
    /// reset at its time by the timer's poll, with no other traffic.
    @Test func aQuietConnectionIsResetAtItsIdleDeadline() throws {
        var mux = StreamMux(idSeed: 9)
        let peer = SigningKey.generate().publicKey
        let connection = try mux.open(to: peer, port: 1002, now: 0)
        _ = mux.poll(connection, now: 0)
        let first = mux.nextDeadline()
        let deadline = try #require(first)
        #expect(deadline == mux.idleTimeout)
        // Nothing is due before the deadline, and nothing is polled.
        let early = mux.poll(now: 1_000)
        #expect(early.events.isEmpty && early.outgoing.isEmpty)
        var now: Int64 = 1_000
        var reset: StreamReset?
        for _ in 0..<20 where reset == nil {
            now = max(now + 1, mux.nextDeadline() ?? now + 1)
            for case .reset(connection, let why) in mux.poll(now: now).events { reset = why }
        }
        #expect(reset == StreamReset(.idleTimeout, "idle timeout"))
        #expect(now == mux.idleTimeout)
        #expect(!mux.isOpen(connection))
        let after = mux.nextDeadline()
        #expect(after == nil)
    }

    /// Of many connections, only those due are polled; one sent on is due at once.
    @Test func onlyDueConnectionsArePolled() throws {
        var mux = StreamMux(idSeed: 11)
        let peer = SigningKey.generate().publicKey
        mux.maxConnectionsPerPeer = 1_000
        var connections: [StreamMux.ConnectionID] = []
        for _ in 0..<1_000 { connections.append(try mux.open(to: peer, port: 1002, now: 0)) }
        #expect(throws: ReliableChannelError.tooManyConnections(limit: 1_000)) { try mux.open(to: peer, port: 1002, now: 0) }
        _ = mux.poll(now: 0) // every opening segment-less connection scheduled at its timeouts
        let quiet = mux.poll(now: 1).outgoing
        #expect(quiet.isEmpty)
        try mux.send([42], on: connections[500])
        let due = mux.nextDeadline()
        #expect(due == 1) // the latest time the mux was given
        let out = mux.poll(now: 2).outgoing
        #expect(out.count == 1)
        #expect(out.first?.peer == peer)
    }

    /// The opening segment a fresh peer's mux sends to port 1002.
    static func opening(from peer: inout StreamMux, to hub: PublicKey) throws -> OverlayMessage {
        let connection = try peer.open(to: hub, port: 1002, now: 0)
        try peer.send([1, 2, 3], on: connection)
        let out = peer.poll(connection, now: 0)
        return try OverlayMessage.parse(try #require(out.first).payload)
    }

    @Test func aHubTakesMoreThanAThousandNodesAndCapsEachPeerAndTheTotal() throws {
        let hubKey = SigningKey.generate().publicKey
        var hub = StreamMux(idSeed: 9)
        hub.listen(on: 1002)
        // 1,500 nodes, one connection each: all accepted (the old fixed cap was 1,024).
        var nodes: [PublicKey] = []
        for i in 0..<1_500 {
            let key = SigningKey.generate().publicKey
            nodes.append(key)
            var node = StreamMux(idSeed: UInt64(i + 100))
            let (out, events) = hub.receive(try Self.opening(from: &node, to: hubKey), from: key, now: 1) { _ in true }
            #expect(events.first.map { if case .accepted = $0 { true } else { false } } == true)
            #expect(out.allSatisfy { (try? OverlayMessage.parse($0.payload).data[4]) != StreamMux.resetFlag | StreamMux.codedFlag })
        }
        #expect(hub.connectionCount == 1_500)

        // One peer: at most maxConnectionsPerPeer, then a reset that says so.
        hub.maxConnectionsPerPeer = 3
        var greedy = StreamMux(idSeed: 7)
        for _ in 0..<2 {
            _ = hub.receive(try Self.opening(from: &greedy, to: hubKey), from: nodes[0], now: 2) { _ in true }
        }
        #expect(hub.connectionCount == 1_502)
        let (refusal, none) = hub.receive(try Self.opening(from: &greedy, to: hubKey), from: nodes[0], now: 2) { _ in true }
        #expect(none.isEmpty)
        let reset = try OverlayMessage.parse(try #require(refusal.first).payload)
        #expect(reset.data[4] == StreamMux.resetFlag | StreamMux.codedFlag)
        let why = StreamReset(body: reset.data[5...], coded: true)
        #expect(why.code == .tooManyConnections)
        #expect(why.reason == "too many connections from this peer (limit 3)")
        #expect(hub.connectionCount == 1_502)
        #expect(hub.refused == ["too many connections": 1])

        // In all: at the total limit, a new peer is refused until one closes.
        hub.maxConnections = 1_502
        let late = SigningKey.generate().publicKey
        var lateMux = StreamMux(idSeed: 8)
        let (full, _) = hub.receive(try Self.opening(from: &lateMux, to: hubKey), from: late, now: 3) { _ in true }
        let fullReset = try OverlayMessage.parse(try #require(full.first).payload)
        #expect(StreamReset(body: fullReset.data[5...], coded: true).reason == "too many connections (limit 1502)")
        #expect(hub.refused == ["too many connections": 2])
        let someone = try #require(hub.connectionIDs.first { $0.peer == nodes[1] })
        _ = hub.reset(someone, reason: "bye")
        var lateMux2 = StreamMux(idSeed: 11)
        let (_, accepted) = hub.receive(try Self.opening(from: &lateMux2, to: hubKey), from: late, now: 4) { _ in true }
        #expect(accepted.count == 2) // accepted, then the message
        #expect(hub.connectionCount == 1_502)
    }

    @Test func aClosedConnectionGivesItsPeerSlotBack() throws {
        let hubKey = SigningKey.generate().publicKey
        let peer = SigningKey.generate().publicKey
        var hub = StreamMux(idSeed: 9)
        hub.listen(on: 1002)
        hub.maxConnectionsPerPeer = 1
        var node = StreamMux(idSeed: 5)
        for round in 0..<3 {
            let (_, events) = hub.receive(try Self.opening(from: &node, to: hubKey), from: peer, now: Int64(round)) { _ in true }
            guard case .accepted(let id, _)? = events.first else { Issue.record("round \(round): \(events)"); return }
            _ = hub.reset(id, reason: "done")
        }
        #expect(hub.refused.isEmpty)
        #expect(hub.connectionCount == 0)
    }
}
