import PilotCore
import PilotCrypto
import PilotWire
import Testing

/// Nodes with routers, joined by a simulated network of endpoints.
struct Network {
    var routers: [Endpoint: TunnelRouter] = [:]
    var inFlight: [(from: Endpoint, to: Endpoint, datagram: [UInt8])] = []
    var delivered: [Endpoint: [TunnelRouter.Delivery]] = [:]
    var time = TunnelTime(now: 0, wall: 1_764_100_000_000)
    /// Addresses that exist but drop everything (a LAN address of another site).
    var blackholes: Set<Endpoint> = []

    mutating func add(_ endpoint: Endpoint, _ key: SigningKey) {
        routers[endpoint] = TunnelRouter(identity: key, preference: .chacha20poly1305, indexSeed: UInt64(endpoint.port))
    }

    mutating func send(from: Endpoint, _ payload: [UInt8], to peer: PublicKey, candidates: [Endpoint]) {
        for out in routers[from]!.send(payload, to: peer, candidates: candidates, time: time) { inFlight.append((from, out.to, out.datagram)) }
    }

    mutating func run() {
        for _ in 0..<50 where !inFlight.isEmpty {
            let batch = inFlight
            inFlight = []
            for item in batch where !blackholes.contains(item.to) {
                guard routers[item.to] != nil else { continue }
                let (outgoing, deliveries) = routers[item.to]!.receive(item.datagram, from: item.from, time: time)
                delivered[item.to, default: []] += deliveries
                for out in outgoing { inFlight.append((item.to, out.to, out.datagram)) }
            }
        }
    }
}

@Suite struct TunnelRouterTests {
    let aKey = SigningKey.generate(), bKey = SigningKey.generate()
    let a = Endpoint(host: "10.0.0.1", port: 4001), b = Endpoint(host: "10.0.1.1", port: 4002)
    let bLAN = Endpoint(host: "192.168.7.7", port: 4002)

    @Test func theFirstCandidateThatAnswersBecomesThePath() {
        var network = Network()
        network.add(a, aKey)
        network.add(b, bKey)
        network.blackholes = [bLAN]
        network.send(from: a, Array("hello".utf8), to: bKey.publicKey, candidates: [bLAN, b])
        network.run()
        #expect(network.delivered[b]?.map(\.payload) == [Array("hello".utf8)])
        #expect(network.delivered[b]?.first?.from == aKey.publicKey)
        #expect(network.routers[a]!.path(to: bKey.publicKey) == b)
        #expect(network.routers[b]!.path(to: aKey.publicKey) == a)
        // Replies need no candidates: the path is known.
        network.send(from: b, Array("hi".utf8), to: aKey.publicKey, candidates: [])
        network.run()
        #expect(network.delivered[a]?.map(\.payload) == [Array("hi".utf8)])
    }

    @Test func thePathFollowsThePeerWhenItsAddressChanges() {
        var network = Network()
        network.add(a, aKey)
        network.add(b, bKey)
        network.send(from: a, [1], to: bKey.publicKey, candidates: [b])
        network.run()
        // A's NAT rebinds: same router, new public port.
        let moved = Endpoint(host: "10.0.0.1", port: 5555)
        network.routers[moved] = network.routers.removeValue(forKey: a)
        network.send(from: moved, [2], to: bKey.publicKey, candidates: [])
        network.run()
        #expect(network.routers[b]!.path(to: aKey.publicKey) == moved)
        network.send(from: b, [3], to: aKey.publicKey, candidates: [])
        network.run()
        #expect(network.delivered[moved]?.map(\.payload) == [[3]])
    }

    @Test func junkForgedAndReplayedDatagramsAreDroppedCountedAndTrafficGoesOn() {
        var network = Network()
        network.add(a, aKey)
        network.add(b, bKey)
        network.send(from: a, [1], to: bKey.publicKey, candidates: [b])
        network.run()
        network.send(from: a, [2], to: bKey.publicKey, candidates: [])
        let captured = network.inFlight[0].datagram
        network.run()
        var router = network.routers[b]!
        _ = router.receive(captured, from: a, time: network.time)                      // replay
        var forged = captured
        forged[13] = 0x77 // a counter never used, so only authentication can refuse it
        _ = router.receive(forged, from: a, time: network.time)                        // forged
        _ = router.receive(Array(captured.prefix(9)), from: a, time: network.time)     // truncated
        _ = router.receive([1, 4, 0, 0, 0, 9] + Array(repeating: 0, count: 30), from: a, time: network.time) // unknown session
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let junk = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = router.receive(junk, from: a, time: network.time)
        }
        #expect(router.dropped["replayed frame"] == 1)
        #expect(router.dropped["forged or corrupt frame"] == 1)
        #expect(router.dropped["datagram for an unknown session", default: 0] >= 1)
        #expect(router.droppedTotal >= 503)
        network.routers[b] = router
        network.send(from: a, [3], to: bKey.publicKey, candidates: [])
        network.run()
        #expect(network.delivered[b]?.map(\.payload) == [[1], [2], [3]])
    }
}
