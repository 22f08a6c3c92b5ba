import PilotCore
import PilotCrypto
@testable import PilotWire
import Testing

/// Two tunnel endpoints, A and B, exchanging datagrams by hand.
struct TunnelPair {
    let aKey = SigningKey.generate(), bKey = SigningKey.generate()
    var a: TunnelPeer
    var b: TunnelPeer?
    var time = TunnelTime(now: 0, wall: 1_764_100_000_000)
    var nextIndex: UInt32 = 100
    var toB: [[UInt8]] = []
    var toA: [[UInt8]] = []
    var deliveredToB: [[UInt8]] = []
    var deliveredToA: [[UInt8]] = []
    var dropped: [String] = []
    var everyDatagram: [[UInt8]] = []
    let bPreference: AEADAlgorithm

    init(aPreference: AEADAlgorithm = .chacha20poly1305, bPreference: AEADAlgorithm = .chacha20poly1305, timing: TunnelPeer.Timing = .init()) {
        a = TunnelPeer(identity: aKey, peer: bKey.publicKey, preference: aPreference, timing: timing)
        self.bPreference = bPreference
    }

    mutating func index() -> UInt32 { nextIndex += 1; return nextIndex }

    mutating func apply(_ actions: [TunnelPeer.Action], fromA: Bool) {
        for action in actions {
            switch action {
            case .transmit(let datagram):
                everyDatagram.append(datagram)
                #expect(datagram.count <= TunnelFrame.maxDatagramBytes)
                if fromA { toB.append(datagram) } else { toA.append(datagram) }
            case .deliver(let payload): if fromA { deliveredToA.append(payload) } else { deliveredToB.append(payload) }
            case .established: break
            case .dropped(let reason): dropped.append(reason)
            }
        }
    }

    /// Delivers everything in flight, both ways, until quiet.
    mutating func pump() throws {
        for _ in 0..<20 {
            if toB.isEmpty && toA.isEmpty { return }
            let forB = toB, forA = toA
            toB = []; toA = []
            for datagram in forB {
                let frame = try TunnelFrame.parse(datagram)
                if case let .initiation(sender, message) = frame {
                    let read = try TunnelPeer.readInitiation(message, identity: bKey, preference: bPreference)
                    #expect(read.initiator == aKey.publicKey)
                    if b == nil { b = TunnelPeer(identity: bKey, peer: read.initiator, preference: bPreference) }
                    let local = index()
                    apply(b!.respond(to: read.handshake, senderIndex: sender, timestamp: read.timestamp, time: time, localIndex: local), fromA: false)
                } else {
                    apply(b!.receive(frame, time: time), fromA: false)
                }
            }
            for datagram in forA { apply(a.receive(try TunnelFrame.parse(datagram), time: time), fromA: true) }
        }
    }

    mutating func sendFromA(_ payload: [UInt8]) { let i = index(); apply(a.send(payload, time: time, freshIndex: i), fromA: true) }
    mutating func sendFromB(_ payload: [UInt8]) { let i = index(); apply(b!.send(payload, time: time, freshIndex: i), fromA: false) }
    mutating func advance(seconds: Int64) {
        time.now += seconds * 1_000_000
        time.wall += seconds * 1000
        let i = index(), j = index()
        apply(a.tick(time: time, freshIndex: i), fromA: true)
        if b != nil { apply(b!.tick(time: time, freshIndex: j), fromA: false) }
    }
}

@Suite struct TunnelPeerTests {
    @Test func queuedPayloadsFlowOnceTheHandshakeCompletesAndNeverInPlaintext() throws {
        var pair = TunnelPair()
        let marker = Array("MARKER-plaintext-must-not-appear".utf8)
        pair.sendFromA(marker)
        #expect(pair.toB.count == 1) // only the initiation
        #expect(try TunnelFrame.parse(pair.toB[0]) == TunnelFrame.parse(pair.toB[0]))
        try pair.pump()
        #expect(pair.deliveredToB == [marker])
        pair.sendFromB(Array("pong".utf8))
        try pair.pump()
        #expect(pair.deliveredToA == [Array("pong".utf8)])
        for datagram in pair.everyDatagram {
            let found = datagram.count >= marker.count && (0...(datagram.count - marker.count)).contains { Array(datagram[$0..<$0 + marker.count]) == marker }
            #expect(!found)
        }
    }

    @Test func theFallbackAEADIsNegotiatedWhenOneSideLacksAES() throws {
        guard AEADAlgorithm.hardwareAESAvailable else { return }
        var both = TunnelPair(aPreference: .aes256gcm, bPreference: .aes256gcm)
        both.sendFromA([1])
        try both.pump()
        #expect(both.a.algorithm == .aes256gcm)
        var forced = TunnelPair(aPreference: .aes256gcm, bPreference: AEADAlgorithm.localPreference(environment: ["PILOT_AEAD": "chacha20-poly1305"]))
        forced.sendFromA([1])
        try forced.pump()
        #expect(forced.a.algorithm == .chacha20poly1305)
        #expect(forced.deliveredToB == [[1]])
    }

    @Test func aReplayedInitiationIsRefused() throws {
        var pair = TunnelPair()
        pair.sendFromA([1])
        let initiation = pair.toB[0]
        try pair.pump()
        pair.toB = [initiation] // an attacker replays the captured initiation
        try pair.pump()
        #expect(pair.dropped.contains { $0.hasPrefix("replayed handshake initiation") })
        pair.sendFromA([2]) // the session still works
        try pair.pump()
        #expect(pair.deliveredToB == [[1], [2]])
    }

    @Test func forgedReplayedAndTruncatedTransportFramesAreDroppedAndTrafficGoesOn() throws {
        var pair = TunnelPair()
        pair.sendFromA([1])
        try pair.pump()
        pair.sendFromA([2])
        let frame = pair.toB[0]
        try pair.pump()
        pair.toB = [frame] // replay
        try pair.pump()
        var forged = frame
        forged[forged.count - 1] ^= 1
        pair.toB = [forged]
        try pair.pump()
        #expect(throws: WireError.truncated(what: "transport datagram")) { try TunnelFrame.parse(Array(frame.prefix(12))) }
        #expect(throws: WireError.unsupportedVersion(got: 9, supported: TunnelFrame.version)) { try TunnelFrame.parse([9, 4]) }
        #expect(pair.dropped.count == 2)
        pair.sendFromA([3])
        try pair.pump()
        #expect(pair.deliveredToB == [[1], [2], [3]])
    }

    @Test func sessionsRekeyAfterTwoMinutesAndOldFramesStillArriveDuringTheSwitch() throws {
        var pair = TunnelPair()
        pair.sendFromA([1])
        try pair.pump()
        #expect(pair.a.handshakesCompleted == 1)
        for _ in 0..<11 { // 110 s of traffic
            pair.advance(seconds: 10)
            pair.sendFromA([0x42])
            try pair.pump()
        }
        #expect(pair.a.handshakesCompleted == 1)
        // From 120 s, within the rekey spread, a tick starts one new handshake.
        pair.advance(seconds: 9)
        #expect(try pair.toB.allSatisfy { if case .initiation = try TunnelFrame.parse($0) { false } else { true } })
        var initiations: [[UInt8]] = []
        for _ in 0..<11 where initiations.isEmpty {
            pair.advance(seconds: 1)
            initiations = try pair.toB.filter { if case .initiation = try TunnelFrame.parse($0) { true } else { false } }
        }
        #expect(initiations.count == 1)
        pair.sendFromA([7]) // sealed under the old session, arriving after B switched
        try pair.pump()
        #expect(pair.a.handshakesCompleted == 2)
        #expect(pair.deliveredToB.last == [7])
        pair.sendFromA([8]) // and the new session carries on
        try pair.pump()
        #expect(pair.deliveredToB.suffix(2) == [[7], [8]])
        #expect(pair.dropped.isEmpty, "\(pair.dropped)")
    }

    /// Sessions set up together (nodes reconnecting after a hub restart)
    /// rekey over the spread, not all in one second.
    @Test func sessionsSetUpTogetherRekeyAtSpreadTimes() {
        let timing = TunnelPeer.Timing()
        var random = SplitMix64(state: 7)
        let dues = (0..<200).map { _ in
            let index = UInt32.random(in: 1...UInt32.max, using: &random)
            return timing.rekeyAfter + TunnelPeer.Timing.spread(index, over: timing.rekeySpread)
        }
        #expect(dues.allSatisfy { $0 >= timing.rekeyAfter && $0 < timing.rekeyAfter + timing.rekeySpread })
        let seconds = Dictionary(grouping: dues) { $0 / 1_000_000 }
        #expect(seconds.count == 10)
        #expect(seconds.values.allSatisfy { $0.count < 40 }, "\(seconds.mapValues(\.count))")
    }

    @Test func aSessionExpiresWithoutRekeyAndAHandshakeGivesUp() throws {
        var timing = TunnelPeer.Timing()
        timing.idleAfter = 30_000_000
        var pair = TunnelPair(timing: timing)
        pair.sendFromA([1])
        try pair.pump()
        pair.advance(seconds: 181) // idle: no rekey, no keepalive; past the reject limit
        #expect(!pair.a.isEstablished)
        // The peer is gone: the handshake retries, then gives up and drops what waited.
        pair.b = nil
        pair.sendFromA([2])
        pair.toB = []
        for _ in 0..<16 { pair.advance(seconds: 1); pair.toB = [] }
        #expect(pair.dropped.contains { $0.contains("no handshake answer in 15 s") })
    }

    @Test func keepalivesKeepTheNATMappingWarm() throws {
        var pair = TunnelPair()
        pair.sendFromA([1])
        try pair.pump()
        pair.advance(seconds: 11)
        #expect(!pair.toB.isEmpty) // an empty, encrypted keepalive
        let before = pair.deliveredToB.count
        try pair.pump()
        #expect(pair.deliveredToB.count == before) // keepalives deliver nothing
    }

    @Test func aPeerThatRestartedAndLostTheSessionIsReachedAgainAfterAHandshake() throws {
        var pair = TunnelPair()
        pair.sendFromA(Array("first".utf8))
        try pair.pump()
        #expect(pair.deliveredToB == [Array("first".utf8)])
        // B restarts: same key, no sessions. A's frames now go unanswered.
        pair.b = nil
        for second in 1...6 {
            pair.sendFromA(Array("lost \(second)".utf8))
            pair.toB.removeAll { if case .transport? = try? TunnelFrame.parse($0) { true } else { false } } // the new B cannot read them
            pair.advance(seconds: 1)
            if pair.toB.contains(where: { if case .initiation? = try? TunnelFrame.parse($0) { true } else { false } }) { break }
        }
        #expect(pair.toB.contains { if case .initiation? = try? TunnelFrame.parse($0) { true } else { false } },
                "an unanswered session must lead to a new handshake within the unanswered time")
        try pair.pump()
        pair.sendFromA(Array("after".utf8))
        try pair.pump()
        #expect(pair.deliveredToB.last == Array("after".utf8))
    }

    @Test func aSessionThatIsAnsweredIsNotRenegotiated() throws {
        var pair = TunnelPair()
        pair.sendFromA(Array("hello".utf8))
        try pair.pump()
        let handshakes = pair.a.handshakesCompleted
        for _ in 0..<20 { // 20 s of one-way data: B's passive keepalives answer it
            pair.sendFromA(Array("data".utf8))
            try pair.pump()
            pair.advance(seconds: 1)
            try pair.pump()
        }
        #expect(pair.a.handshakesCompleted == handshakes)
    }
}

/// `nextDeadline` is what lets a router tick only the peers that are due:
/// it must never be later than the first tick that would act. Random
/// traffic, loss, restarts and silences, checked every quarter second on
/// both sides; the peers themselves are ticked only at their deadlines,
/// as the router does, and still deliver.
@Suite struct TunnelPeerDeadlineTests {
    /// What a tick can change, with or without an action.
    static func fingerprint(_ peer: TunnelPeer) -> [Int64] {
        [Int64(peer.current?.localIndex ?? 0), Int64(peer.previous?.localIndex ?? 0), Int64(peer.next?.localIndex ?? 0),
         peer.pending?.sentAt ?? -1, Int64(peer.queue.count), peer.lastSentAt ?? -1]
    }

    /// True when ticking `peer` at `time` would do something.
    static func tickActs(_ peer: TunnelPeer, _ time: TunnelTime) -> Bool {
        var copy = peer
        return !copy.tick(time: time, freshIndex: 7).isEmpty || fingerprint(copy) != fingerprint(peer)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func theDeadlineIsNeverLaterThanTheFirstTickThatActs(seed: UInt64) throws {
        var timing = TunnelPeer.Timing()
        timing.idleAfter = 40_000_000
        var pair = TunnelPair(timing: timing)
        var random = SplitMix(seed: seed)
        let forget: Int64 = 60_000_000
        var dueA: Int64? = nil, dueB: Int64? = nil
        var delivered = 0
        for step in 0..<2400 { // 10 minutes in quarter seconds
            switch random.next() % 100 {
            case 0..<6: pair.sendFromA(Array("a\(step)".utf8))
            case 6..<9: if pair.b != nil { pair.sendFromB(Array("b\(step)".utf8)) }
            case 9: pair.b = nil // B restarts and loses its sessions
            default: break
            }
            if random.next() % 4 == 0 { pair.toB.removeAll(); pair.toA.removeAll() } // lost
            for _ in 0..<20 where !(pair.toA.isEmpty && pair.toB.isEmpty) {
                // A restarted B reads only initiations; what was sealed for its old sessions is lost on it.
                if pair.b == nil { pair.toB.removeAll { if case .initiation? = try? TunnelFrame.parse($0) { false } else { true } } }
                try pair.pump()
            }
            pair.time.now += 250_000
            pair.time.wall += 250
            // Never later: a tick now that would act means the deadline has come.
            if TunnelPeerDeadlineTests.tickActs(pair.a, pair.time) {
                let deadline = try #require(pair.a.nextDeadline(forgetAfter: forget), "A acts at \(pair.time.now) with no deadline")
                #expect(deadline <= pair.time.now, "A acts at \(pair.time.now), deadline \(deadline) (seed \(seed), step \(step))")
            }
            if let b = pair.b, TunnelPeerDeadlineTests.tickActs(b, pair.time) {
                let deadline = try #require(b.nextDeadline(forgetAfter: forget), "B acts at \(pair.time.now) with no deadline")
                #expect(deadline <= pair.time.now, "B acts at \(pair.time.now), deadline \(deadline) (seed \(seed), step \(step))")
            }
            // Ticked only when due, as a router does.
            dueA = pair.a.nextDeadline(forgetAfter: forget)
            if let at = dueA, at <= pair.time.now { let i = pair.index(); pair.apply(pair.a.tick(time: pair.time, freshIndex: i), fromA: true) }
            dueB = pair.b?.nextDeadline(forgetAfter: forget)
            if let at = dueB, at <= pair.time.now { let i = pair.index(); pair.apply(pair.b!.tick(time: pair.time, freshIndex: i), fromA: false) }
            delivered = pair.deliveredToB.count
        }
        #expect(delivered > 20, "traffic flowed with deadline-driven ticks (seed \(seed)): \(delivered)")
    }
}

/// A small deterministic generator for the scenarios above.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
