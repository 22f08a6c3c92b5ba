import PilotCore
import PilotCrypto
import PilotWire
import Testing

@Suite struct BeaconTests {
    let a = SigningKey.generate(), b = SigningKey.generate()
    let registry = SigningKey.generate()
    let aNAT = Endpoint(host: "100.64.0.11", port: 40001), bNAT = Endpoint(host: "100.64.0.12", port: 52000)
    var time = TunnelTime(now: 1_000_000, wall: 1_764_100_000_000)

    func ticket(_ key: SigningKey, issued offset: Int64 = 0, lifetime: Int64 = 1_800_000, network: UInt16 = 1) -> BeaconTicket {
        BeaconTicket.issue(for: key.publicKey, network: network, now: time.wall + offset, lifetimeMs: lifetime, by: registry)
    }

    func hello(_ key: SigningKey, at offset: Int64 = 0, ticket: BeaconTicket? = nil) -> [UInt8] {
        BeaconMessage.signedHello(key, timestamp: UInt64(time.wall + offset), ticket: ticket ?? self.ticket(key)).encoded
    }

    func beacon(_ limits: BeaconCore.Limits = .init()) -> BeaconCore { BeaconCore(limits: limits, issuer: registry.publicKey) }

    @Test func messagesRoundTrip() throws {
        let messages: [BeaconMessage] = [
.signedHello(a, timestamp: 7, ticket: ticket(a)), .signedHello(a, timestamp: 7, ticket: nil), .welcome(observed: aNAT), .welcome(observed: Endpoint(host: "2001:db8:0:0:0:0:0:1", port: 9)),
            .signedConnect(a, to: b.publicKey, timestamp: 8), .punch(peer: b.publicKey, endpoint: bNAT),
            .relay(target: b.publicKey, datagram: [1, 4, 9]), .relayed(source: a.publicKey, datagram: [1, 4, 9]), .refused("no"),
        ]
        for message in messages { #expect(try BeaconMessage.parse(message.encoded) == message) }
        #expect(BeaconMessage.isBeaconDatagram(messages[0].encoded))
        #expect(!BeaconMessage.isBeaconDatagram(TunnelFrame.transport(receiverIndex: 1, sealed: Array(repeating: 0, count: 24)).encoded))
    }

    @Test func helloTellsANodeItsPublicEndpoint() throws {
        var beacon = beacon()
        let out = beacon.receive(hello(a), from: aNAT, time: time)
        #expect(out == [BeaconCore.Outgoing(datagram: BeaconMessage.welcome(observed: aNAT).encoded, to: aNAT)])
        #expect(beacon.endpoint(of: a.publicKey) == aNAT)
    }

    @Test func forgedStaleAndReplayedHellosAreDropped() throws {
        var beacon = beacon()
        let first = hello(a)
        _ = beacon.receive(first, from: aNAT, time: time)
        // Someone else claims a's key from another address: the signature is b's.
        let forged = BeaconMessage.hello(node: a.publicKey, timestamp: UInt64(time.wall + 5), signature: b.sign([1]), ticket: ticket(a)).encoded
        #expect(beacon.receive(forged, from: bNAT, time: time).isEmpty)
        #expect(beacon.receive(first, from: bNAT, time: time).isEmpty) // replayed from elsewhere
        #expect(beacon.receive(hello(a, at: -400_000), from: aNAT, time: time).isEmpty) // stale
        #expect(beacon.endpoint(of: a.publicKey) == aNAT)
        #expect(beacon.counters.dropped == ["bad signature": 1, "replayed message": 1, "stale timestamp": 1])
    }

    @Test func connectIntroducesBothNodesForPunching() throws {
        var beacon = beacon()
        _ = beacon.receive(hello(a), from: aNAT, time: time)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let out = beacon.receive(BeaconMessage.signedConnect(a, to: b.publicKey, timestamp: UInt64(time.wall + 1)).encoded, from: aNAT, time: time)
        #expect(out == [
            BeaconCore.Outgoing(datagram: BeaconMessage.punch(peer: b.publicKey, endpoint: bNAT).encoded, to: aNAT),
            BeaconCore.Outgoing(datagram: BeaconMessage.punch(peer: a.publicKey, endpoint: aNAT).encoded, to: bNAT),
        ])
        let unknown = SigningKey.generate().publicKey
        let refused = beacon.receive(BeaconMessage.signedConnect(a, to: unknown, timestamp: UInt64(time.wall + 2)).encoded, from: aNAT, time: time)
        #expect(try refused.map { try BeaconMessage.parse($0.datagram) } == [.refused("the target is not connected to this beacon")])
    }

    @Test func relayForwardsCiphertextAndCountsIt() throws {
        var beacon = beacon()
        _ = beacon.receive(hello(a), from: aNAT, time: time)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let inner = TunnelFrame.transport(receiverIndex: 7, sealed: Array(repeating: 0xAB, count: 40)).encoded
        let out = beacon.receive(BeaconMessage.relay(target: b.publicKey, datagram: inner).encoded, from: aNAT, time: time)
        #expect(out == [BeaconCore.Outgoing(datagram: BeaconMessage.relayed(source: a.publicKey, datagram: inner).encoded, to: bNAT)])
        #expect(beacon.counters.relayedDatagrams == 1 && beacon.counters.relayedBytes == inner.count)
        // From an address that never said hello: dropped.
        #expect(beacon.receive(BeaconMessage.relay(target: b.publicKey, datagram: inner).encoded, from: Endpoint(host: "6.6.6.6", port: 1), time: time).isEmpty)
        #expect(beacon.counters.dropped["relay from an endpoint without a hello"] == 1)
    }

    @Test func relayBudgetsBoundWhatOneNodeCanPush() throws {
        var limits = BeaconCore.Limits()
        limits.relayDatagramsPerSecond = 10
        var beacon = beacon(limits)
        _ = beacon.receive(hello(a), from: aNAT, time: time)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let relay = BeaconMessage.relay(target: b.publicKey, datagram: [1, 4, 0, 0]).encoded
        var forwarded = 0
        for _ in 0..<50 where !beacon.receive(relay, from: aNAT, time: time).isEmpty { forwarded += 1 }
        #expect(forwarded == 10)
        #expect(beacon.counters.dropped["relay budget exceeded"] == 40)
        var later = time
        later.now += 500_000 // half a second refills half the budget
        for _ in 0..<50 where !beacon.receive(relay, from: aNAT, time: later).isEmpty { forwarded += 1 }
        #expect(forwarded == 15)
    }

    @Test func aTicketIsSmallAndRoundTrips() throws {
        let issued = ticket(a)
        #expect(try BeaconTicket.parse(issued.encoded) == issued)
        #expect(try BeaconTicket(base64: issued.base64) == issued)
        try issued.verify(issuer: registry.publicKey)
        #expect(throws: WireError.self) { try issued.verify(issuer: a.publicKey) }
        #expect(issued.lifetimeMs == 1_800_000)
        // A hello with its ticket stays far below the 1,280-byte datagram limit.
        #expect(hello(a).count == 221)
        #expect(throws: WireError.self) { try BeaconTicket.parse(Array(issued.encoded.dropLast())) }
        #expect(throws: WireError.self) { try BeaconTicket.parse([2] + issued.encoded.dropFirst()) }
    }

    @Test func onlyKeysTheRegistryVouchesForGetAnAnswer() throws {
        var beacon = beacon()
        let stranger = SigningKey.generate()
        let selfSigned = BeaconTicket.issue(for: stranger.publicKey, network: 1, now: time.wall, lifetimeMs: 60_000, by: stranger)
        let refused: [[UInt8]] = [
            BeaconMessage.signedHello(stranger, timestamp: UInt64(time.wall), ticket: nil).encoded,     // no ticket (a node from before tickets)
            hello(stranger, ticket: ticket(a)),                                                            // a's ticket, stolen
            hello(stranger, ticket: selfSigned),                                                           // not the registry's signature
            hello(a, ticket: ticket(a, issued: -2_000_000, lifetime: 1_000_000)),                          // expired 1,000 s ago
            hello(a, ticket: ticket(a, issued: 400_000)),                                                  // issued 400 s ahead of this clock
        ]
        for datagram in refused { #expect(beacon.receive(datagram, from: aNAT, time: time).isEmpty) }
        #expect(beacon.counters.dropped == ["hello without a ticket": 1, "ticket for another key": 1, "ticket badly signed": 1,
                                            "ticket expired": 1, "ticket not yet valid": 1])
        #expect(beacon.nodeCount == 0)
        // Without the registry's key the beacon serves no one; once it learns it, a ticketed hello is welcome.
        var blind = BeaconCore(issuer: nil)
        #expect(blind.receive(hello(a), from: aNAT, time: time).isEmpty)
        #expect(blind.counters.dropped == ["registry key not known yet": 1])
        blind.trust(issuer: registry.publicKey)
        #expect(blind.receive(hello(a, at: 1), from: aNAT, time: time) == [BeaconCore.Outgoing(datagram: BeaconMessage.welcome(observed: aNAT).encoded, to: aNAT)])
        // Nor does relay or an introduction work from an endpoint whose hello was refused.
        let inner = TunnelFrame.transport(receiverIndex: 7, sealed: Array(repeating: 0xAB, count: 40)).encoded
        #expect(blind.receive(BeaconMessage.relay(target: a.publicKey, datagram: inner).encoded, from: bNAT, time: time).isEmpty)
        #expect(blind.counters.relayedDatagrams == 0)
    }

    @Test func clockSkewWithinTheBoundIsTolerated() {
        var beacon = beacon()
        // The registry's clock 4 minutes behind this one (expired by its own account) or ahead: still served.
        #expect(!beacon.receive(hello(a, ticket: ticket(a, issued: -1_440_000, lifetime: 1_200_000)), from: aNAT, time: time).isEmpty)
        #expect(!beacon.receive(hello(b, ticket: ticket(b, issued: 240_000)), from: bNAT, time: time).isEmpty)
        #expect(beacon.counters.dropped.isEmpty)
    }

    @Test func aNodeIsServedUntilItsTicketExpiresAndARenewalLeavesNoGap() throws {
        var beacon = beacon()
        let short = ticket(a, lifetime: 60_000)
        _ = beacon.receive(hello(a, ticket: short), from: aNAT, time: time)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let relay = BeaconMessage.relay(target: b.publicKey, datagram: [1, 4, 0, 0]).encoded
        func at(_ seconds: Int64) -> TunnelTime { TunnelTime(now: time.now + seconds * 1_000_000, wall: time.wall + seconds * 1000) }
        // Saying hello with the same ticket keeps it served through expiry + skew (60 s + 300 s), and not after.
        for second: Int64 in [100, 200, 300, 355] {
            _ = beacon.receive(hello(a, at: second * 1000, ticket: short), from: aNAT, time: at(second))
            _ = beacon.receive(hello(b, at: second * 1000), from: bNAT, time: at(second))
        }
        #expect(!beacon.receive(relay, from: aNAT, time: at(359)).isEmpty)
        #expect(beacon.receive(relay, from: aNAT, time: at(361)).isEmpty)
        #expect(beacon.counters.dropped["relay from a node no longer vouched for"] == 1)
        // b relays to a: a is no target any more either. (b keeps saying hello.)
        _ = beacon.receive(hello(b, at: 361_000), from: bNAT, time: at(361))
        #expect(beacon.receive(BeaconMessage.relay(target: a.publicKey, datagram: [1, 4, 0, 0]).encoded, from: bNAT, time: at(361)).isEmpty)
        #expect(beacon.counters.dropped["relay to an unknown node"] == 1)

        // A node that renews at half-life and says hello at once is never refused.
        var renewing = self.beacon()
        var current = ticket(a, lifetime: 60_000)
        _ = renewing.receive(hello(b), from: bNAT, time: time)
        for second in Int64(0)..<600 {
            let now = at(second)
            if second % 30 == 0 {
                current = BeaconTicket.issue(for: a.publicKey, network: 1, now: now.wall, lifetimeMs: 60_000, by: registry)
                #expect(!renewing.receive(hello(a, at: second * 1000, ticket: current), from: aNAT, time: now).isEmpty)
            } else if second % 20 == 0 {
                _ = renewing.receive(hello(a, at: second * 1000 + 1, ticket: current), from: aNAT, time: now)
            }
            if second % 20 == 0 { _ = renewing.receive(hello(b, at: second * 1000 + 2), from: bNAT, time: now) }
            #expect(!renewing.receive(relay, from: aNAT, time: now).isEmpty)
        }
        #expect(renewing.counters.relayedDatagrams == 600)
        #expect(renewing.counters.dropped.isEmpty)
    }

    @Test func manySendersTogetherMoveAtMostTheTargetsBudget() throws {
        var limits = BeaconCore.Limits()
        limits.relayDatagramsPerSecond = 100
        limits.relayBytesPerSecond = 1_000_000
        limits.targetDatagramsPerSecond = 200
        limits.targetBytesPerSecond = 150_000
        var beacon = beacon(limits)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let senders = (0..<8).map { _ in SigningKey.generate() }
        let sources = (0..<8).map { Endpoint(host: "100.64.1.\($0)", port: 4000) }
        for (key, source) in zip(senders, sources) { _ = beacon.receive(hello(key), from: source, time: time) }
        let inner = [UInt8](repeating: 0xEE, count: 500)
        let relay = BeaconMessage.relay(target: b.publicKey, datagram: inner).encoded
        var forwarded = 0
        for _ in 0..<100 { for source in sources where !beacon.receive(relay, from: source, time: time).isEmpty { forwarded += 1 } }
        // Each sender could push 100; together they get the target's 200 datagrams, and the bytes bound 150,000 / 500 = 300 is not hit.
        #expect(forwarded == 200)
        #expect(beacon.counters.dropped["relay target budget exceeded"] == 600)
        // Half a second later: half the target's budget again, whoever sends.
        var later = time
        later.now += 500_000
        for _ in 0..<100 { for source in sources where !beacon.receive(relay, from: source, time: later).isEmpty { forwarded += 1 } }
        #expect(forwarded == 300)
        // Another target has its own budget: it is not starved by the first one's.
        let c = SigningKey.generate(), cNAT = Endpoint(host: "100.64.0.13", port: 5000)
        _ = beacon.receive(hello(c), from: cNAT, time: later)
        _ = beacon.receive(hello(a), from: aNAT, time: later)
        #expect(!beacon.receive(BeaconMessage.relay(target: c.publicKey, datagram: inner).encoded, from: aNAT, time: later).isEmpty)
    }

    @Test func introductionsCountAgainstTheTargetsBudgetToo() throws {
        var limits = BeaconCore.Limits()
        limits.targetDatagramsPerSecond = 5
        var beacon = beacon(limits)
        _ = beacon.receive(hello(b), from: bNAT, time: time)
        let senders = (0..<4).map { _ in SigningKey.generate() }
        var punchesToB = 0
        for (index, key) in senders.enumerated() {
            let source = Endpoint(host: "100.64.2.\(index)", port: 4000)
            _ = beacon.receive(hello(key), from: source, time: time)
            for step in 1...5 {
                let connect = BeaconMessage.signedConnect(key, to: b.publicKey, timestamp: UInt64(time.wall + Int64(step))).encoded
                punchesToB += beacon.receive(connect, from: source, time: time).filter { $0.to == bNAT }.count
            }
        }
        #expect(punchesToB == 5)
        #expect(beacon.counters.dropped["relay target budget exceeded"] == 15)
    }

    @Test func relayStaysWithinOneNetwork() {
        var beacon = beacon()
        _ = beacon.receive(hello(a), from: aNAT, time: time)
        _ = beacon.receive(hello(b, ticket: ticket(b, network: 2)), from: bNAT, time: time)
        #expect(beacon.receive(BeaconMessage.relay(target: b.publicKey, datagram: [1, 4, 0, 0]).encoded, from: aNAT, time: time).isEmpty)
        #expect(beacon.receive(BeaconMessage.relay(target: a.publicKey, datagram: [1, 4, 0, 0]).encoded, from: aNAT, time: time).isEmpty)
        #expect(beacon.counters.dropped == ["relay to another network": 1, "relay to an unknown node": 1])
    }

    @Test func junkIsDroppedAndCounted() {
        var beacon = beacon()
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var junk = (0..<Int.random(in: 0...120, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if junk.count > 1, Bool.random(using: &generator) { junk[0] = 1; junk[1] = UInt8.random(in: 16...22, using: &generator) }
            #expect(beacon.receive(junk, from: aNAT, time: time).allSatisfy { (try? BeaconMessage.parse($0.datagram)) != nil })
        }
        #expect(beacon.counters.droppedTotal >= 1900)
        #expect(beacon.nodeCount == 0)
    }
}
