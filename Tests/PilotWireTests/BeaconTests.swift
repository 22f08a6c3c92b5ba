import PilotCore
import PilotCrypto
import PilotWire
import Testing

@Suite struct BeaconTests {
    let a = SigningKey.generate(), b = SigningKey.generate()
    let aNAT = Endpoint(host: "100.64.0.11", port: 40001), bNAT = Endpoint(host: "100.64.0.12", port: 52000)
    var time = TunnelTime(now: 1_000_000, wall: 1_764_100_000_000)

    func hello(_ key: SigningKey, at offset: Int64 = 0) -> [UInt8] {
        BeaconMessage.signedHello(key, timestamp: UInt64(time.wall + offset)).encoded
    }

    @Test func messagesRoundTrip() throws {
        let messages: [BeaconMessage] = [
            .signedHello(a, timestamp: 7), .welcome(observed: aNAT), .welcome(observed: Endpoint(host: "2001:db8:0:0:0:0:0:1", port: 9)),
            .signedConnect(a, to: b.publicKey, timestamp: 8), .punch(peer: b.publicKey, endpoint: bNAT),
            .relay(target: b.publicKey, datagram: [1, 4, 9]), .relayed(source: a.publicKey, datagram: [1, 4, 9]), .refused("no"),
        ]
        for message in messages { #expect(try BeaconMessage.parse(message.encoded) == message) }
        #expect(BeaconMessage.isBeaconDatagram(messages[0].encoded))
        #expect(!BeaconMessage.isBeaconDatagram(TunnelFrame.transport(receiverIndex: 1, sealed: Array(repeating: 0, count: 24)).encoded))
    }

    @Test func helloTellsANodeItsPublicEndpoint() throws {
        var beacon = BeaconCore()
        let out = beacon.receive(hello(a), from: aNAT, time: time)
        #expect(out == [BeaconCore.Outgoing(datagram: BeaconMessage.welcome(observed: aNAT).encoded, to: aNAT)])
        #expect(beacon.endpoint(of: a.publicKey) == aNAT)
    }

    @Test func forgedStaleAndReplayedHellosAreDropped() throws {
        var beacon = BeaconCore()
        let first = hello(a)
        _ = beacon.receive(first, from: aNAT, time: time)
        // Someone else claims a's key from another address: the signature is b's.
        let forged = BeaconMessage.hello(node: a.publicKey, timestamp: UInt64(time.wall + 5), signature: b.sign([1])).encoded
        #expect(beacon.receive(forged, from: bNAT, time: time).isEmpty)
        #expect(beacon.receive(first, from: bNAT, time: time).isEmpty) // replayed from elsewhere
        #expect(beacon.receive(hello(a, at: -400_000), from: aNAT, time: time).isEmpty) // stale
        #expect(beacon.endpoint(of: a.publicKey) == aNAT)
        #expect(beacon.counters.dropped == ["bad signature": 1, "replayed message": 1, "stale timestamp": 1])
    }

    @Test func connectIntroducesBothNodesForPunching() throws {
        var beacon = BeaconCore()
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
        var beacon = BeaconCore()
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
        var beacon = BeaconCore(limits: limits)
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

    @Test func junkIsDroppedAndCounted() {
        var beacon = BeaconCore()
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
