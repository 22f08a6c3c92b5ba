import PilotCore
import PilotCrypto
import PilotWire
import Testing

/// What a responder does with an initiation before and instead of
/// Diffie-Hellman and per-peer state: mac1, cookies under load, per-source
/// budgets, unknown keys, replays across restarts, idle peers.
@Suite struct TunnelAdmissionTests {
    let aKey = SigningKey.generate(), bKey = SigningKey.generate()
    let a = Endpoint(host: "10.0.0.1", port: 4001), b = Endpoint(host: "10.0.1.1", port: 4002)
    let attacker = Endpoint(host: "10.6.6.6", port: 6666)
    let t0 = TunnelTime(now: 1_000_000, wall: 1_764_100_000_000)

    func router(_ key: SigningKey, limits: TunnelRouter.Limits = .init(), floors: [PublicKey: UInt64] = [:]) -> TunnelRouter {
        TunnelRouter(identity: key, preference: .chacha20poly1305, limits: limits, floors: floors)
    }

    /// Runs datagrams between A (at `a`) and B (at `b`) until quiet; B's
    /// admission is `admit`. Returns what each delivered.
    func exchange(_ first: [TunnelRouter.Outgoing], _ routerA: inout TunnelRouter, _ routerB: inout TunnelRouter, time: TunnelTime,
                  admit: (PublicKey) -> Bool = { _ in true }) -> (atA: [[UInt8]], atB: [[UInt8]]) {
        var toB = first.filter { $0.to == .direct(b) }.map(\.datagram), toA: [[UInt8]] = []
        var atA: [[UInt8]] = [], atB: [[UInt8]] = []
        for _ in 0..<20 where !toA.isEmpty || !toB.isEmpty {
            let (sendB, sendA) = (toB, toA)
            toB = []
            toA = []
            for datagram in sendB {
                let result = routerB.receive(datagram, from: .direct(a), time: time, admit: admit)
                atB += result.delivered.map(\.payload)
                toA += result.outgoing.filter { $0.to == .direct(a) }.map(\.datagram)
            }
            for datagram in sendA {
                let result = routerA.receive(datagram, from: .direct(b), time: time)
                atA += result.delivered.map(\.payload)
                toB += result.outgoing.filter { $0.to == .direct(b) }.map(\.datagram)
            }
        }
        return (atA, atB)
    }

    @Test func anUnknownKeyCostsNoStateAndIsAnsweredOnceTheRegistryVouchesForIt() {
        var routerA = router(aKey), routerB = router(bKey)
        let first = routerA.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let refused = exchange(first, &routerA, &routerB, time: t0) { _ in false }
        #expect(refused.atB.isEmpty)
        #expect(routerB.peerCount == 0)
        #expect(routerB.takeNotes() == [.vouch(aKey.publicKey)])
        #expect(routerB.dropped["initiation from a key this node does not know"] == 1)
        // The registry answered: the retry a second later gets through.
        var later = t0
        later.now += 1_000_000
        later.wall += 1_000
        let retry = routerA.tick(time: later)
        let answered = exchange(retry, &routerA, &routerB, time: later) { $0 == aKey.publicKey }
        #expect(answered.atB == [[1]])
        #expect(routerB.takeNotes().contains { if case .answered(aKey.publicKey, _) = $0 { true } else { false } })
    }

    @Test func aRecordedInitiationReplayedAfterARestartIsRefusedWhenTheFloorWasKept() {
        var routerA = router(aKey), routerB = router(bKey)
        let first = routerA.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let recorded = first[0].datagram
        _ = exchange(first, &routerA, &routerB, time: t0)
        var floors: [PublicKey: UInt64] = [:]
        for case let .answered(key, timestamp) in routerB.takeNotes() { floors[key] = timestamp }
        // B restarts with what it kept; the attacker replays from its own address.
        var restarted = router(bKey, floors: floors)
        let result = restarted.receive(recorded, from: .direct(attacker), time: t0)
        #expect(result.outgoing.isEmpty)
        #expect(restarted.peerCount == 0)
        #expect(restarted.dropped["replayed handshake initiation"] == 1)
    }

    @Test func evenWithoutTheFloorAReplayedInitiationMovesNoTrafficToTheAttacker() {
        var routerA = router(aKey), routerB = router(bKey)
        let first = routerA.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let recorded = first[0].datagram
        _ = exchange(first, &routerA, &routerB, time: t0)
        // B lost everything (no floor kept): the replay is answered towards
        // the attacker, but that session is never used and the route is not the attacker's.
        var restarted = router(bKey)
        let answer = restarted.receive(recorded, from: .direct(attacker), time: t0)
        #expect(answer.outgoing.map(\.to) == [.direct(attacker)])
        #expect(restarted.path(to: aKey.publicKey, time: t0) == nil)
        let data = restarted.send([9], to: aKey.publicKey, candidates: [a], time: t0)
        #expect(!data.isEmpty)
        #expect(data.allSatisfy { $0.to == .direct(a) })
        // What B sends is a new handshake to the real endpoint, not data sealed on the replayed session.
        #expect(data.allSatisfy { (try? TunnelFrame.parse($0.datagram)).map { if case .initiation = $0 { true } else { false } } == true })
    }

    @Test func underLoadAnInitiationWithoutACookieGetsACookieReplyAndTheRealPeerGetsThrough() {
        var limits = TunnelRouter.Limits()
        limits.handshakes.loadThreshold = 0
        var routerA = router(aKey), routerB = router(bKey, limits: limits)
        // A forged source: the cookie reply goes there, and B did no DH and kept nothing.
        let forged = routerA.send([7], to: bKey.publicKey, candidates: [b], time: t0)
        let reply = routerB.receive(forged[0].datagram, from: .direct(attacker), time: t0)
        #expect(reply.outgoing.map(\.to) == [.direct(attacker)])
        #expect(routerB.peerCount == 0)
        #expect(routerB.dropped["initiation answered with a cookie (under load)"] == 1)
        // The real A gets the cookie, retries at once with mac2, and is answered.
        var fresh = router(aKey)
        let first = fresh.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let result = exchange(first, &fresh, &routerB, time: t0)
        #expect(result.atB == [[1]])
        #expect(routerB.dropped["initiation answered with a cookie (under load)"] == 2)
    }

    @Test func anInitiationForAnotherKeyOrWithoutMacsCostsOneHMAC() {
        var routerB = router(bKey)
        var routerC = router(SigningKey.generate())
        var routerA = router(aKey)
        let meantForC = routerA.send([1], to: routerC.identity.publicKey, candidates: [b], time: t0)
        _ = routerB.receive(meantForC[0].datagram, from: .direct(a), time: t0)
        var stripped = meantForC[0].datagram
        stripped.removeLast(HandshakeCookies.trailerBytes)
        _ = routerC.receive(stripped + [UInt8](repeating: 0, count: HandshakeCookies.trailerBytes), from: .direct(a), time: t0)
        #expect(routerB.dropped["initiation with a bad mac1"] == 1)
        #expect(routerC.dropped["initiation with a bad mac1"] == 1)
        #expect(routerB.peerCount == 0)
    }

    @Test func oneSourceAddressHasABudgetOfInitiations() {
        var limits = TunnelRouter.Limits()
        limits.handshakes.perSourceBurst = 3
        limits.handshakes.perSourcePerSecond = 1
        var routerB = router(bKey, limits: limits)
        for _ in 0..<5 {
            var stranger = router(SigningKey.generate())
            let initiation = stranger.send([1], to: bKey.publicKey, candidates: [b], time: t0)
            _ = routerB.receive(initiation[0].datagram, from: .direct(attacker), time: t0)
        }
        #expect(routerB.dropped["too many handshake initiations from one address"] == 2)
        #expect(routerB.peerCount == 3)
    }

    @Test func aCookieReplyParsesReEncodesAndRefusesTheWrongLength() throws {
        let reply = TunnelFrame.cookieReply(receiverIndex: 9, nonce: [UInt8](repeating: 1, count: 12), sealed: [UInt8](repeating: 2, count: 32))
        #expect(try TunnelFrame.parse(reply.encoded) == reply)
        #expect(throws: WireError.self) { try TunnelFrame.parse(Array(reply.encoded.dropLast())) }
        #expect(throws: WireError.self) { try TunnelFrame.parse(reply.encoded + [0]) }
        // An initiation without room for its MACs is refused before anything else.
        #expect(throws: WireError.truncated(what: "handshake initiation")) { try TunnelFrame.parse([TunnelFrame.version, 1, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 32)) }
    }

    @Test func aCookieReplyForgedOrForAnotherInitiationIsIgnored() {
        var limits = TunnelRouter.Limits()
        limits.handshakes.loadThreshold = 0
        var routerA = router(aKey), routerB = router(bKey, limits: limits)
        let first = routerA.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let reply = routerB.receive(first[0].datagram, from: .direct(a), time: t0).outgoing[0].datagram
        guard case let .cookieReply(index, nonce, sealed)? = try? TunnelFrame.parse(reply) else {
            Issue.record("no cookie reply")
            return
        }
        var tampered = sealed
        tampered[0] ^= 1
        let forged = routerA.receive(TunnelFrame.cookieReply(receiverIndex: index, nonce: nonce, sealed: tampered).encoded, from: .direct(b), time: t0)
        #expect(forged.outgoing.isEmpty)
        #expect(routerA.dropped["cookie reply that does not open"] == 1)
        let stray = routerA.receive(TunnelFrame.cookieReply(receiverIndex: index &+ 1, nonce: nonce, sealed: sealed).encoded, from: .direct(b), time: t0)
        #expect(stray.outgoing.isEmpty)
    }

    @Test func idlePeersAreForgottenButTheirNewestInitiationIsNot() {
        var routerA = router(aKey), routerB = router(bKey)
        let first = routerA.send([1], to: bKey.publicKey, candidates: [b], time: t0)
        let recorded = first[0].datagram
        _ = exchange(first, &routerA, &routerB, time: t0)
        #expect(routerB.peerCount == 1)
        var later = t0
        for _ in 0..<300 {
            later.now += 1_000_000
            later.wall += 1_000
            _ = routerB.tick(time: later)
        }
        #expect(routerB.peerCount == 0)
        #expect(routerB.floors[aKey.publicKey] != nil)
        _ = routerB.receive(recorded, from: .direct(attacker), time: later)
        #expect(routerB.dropped["replayed handshake initiation"] == 1)
        #expect(routerB.peerCount == 0)
    }
}
