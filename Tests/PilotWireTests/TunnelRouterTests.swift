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
        for out in routers[from]!.send(payload, to: peer, candidates: candidates, time: time) { inFlight.append((from, Self.endpoint(out.to), out.datagram)) }
    }

    static func endpoint(_ route: Route) -> Endpoint {
        guard case .direct(let endpoint) = route else { return Endpoint(host: "relay", port: 0) }
        return endpoint
    }

    mutating func run() {
        for _ in 0..<50 where !inFlight.isEmpty {
            let batch = inFlight
            inFlight = []
            for item in batch where !blackholes.contains(item.to) {
                guard routers[item.to] != nil else { continue }
                let (outgoing, deliveries) = routers[item.to]!.receive(item.datagram, from: .direct(item.from), time: time)
                delivered[item.to, default: []] += deliveries
                for out in outgoing { inFlight.append((item.to, Self.endpoint(out.to), out.datagram)) }
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
        #expect(network.routers[a]!.path(to: bKey.publicKey) == .direct(b))
        #expect(network.routers[b]!.path(to: aKey.publicKey) == .direct(a))
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
        #expect(network.routers[b]!.path(to: aKey.publicKey) == .direct(moved))
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
        _ = router.receive(captured, from: .direct(a), time: network.time)             // replay
        var forged = captured
        forged[13] = 0x77 // a counter never used, so only authentication can refuse it
        _ = router.receive(forged, from: .direct(a), time: network.time)               // forged
        _ = router.receive(Array(captured.prefix(9)), from: .direct(a), time: network.time) // truncated
        _ = router.receive([TunnelFrame.version, 4, 0, 0, 0, 9] + Array(repeating: 0, count: 30), from: .direct(a), time: network.time) // unknown session
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let junk = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = router.receive(junk, from: .direct(a), time: network.time)
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

/// Two routers with a relay, and a direct path that can be cut.
struct RelayedPair {
    let aKey = SigningKey.generate(), bKey = SigningKey.generate()
    let aPublic = Endpoint(host: "100.64.0.11", port: 40001), bPublic = Endpoint(host: "100.64.0.12", port: 52000)
    var a: TunnelRouter, b: TunnelRouter
    var directWorks = false
    var time = TunnelTime(now: 0, wall: 1_764_100_000_000)
    var deliveredToB: [[UInt8]] = []
    var relayedDatagrams = 0
    var queue: [(toB: Bool, datagram: [UInt8], via: Route)] = []

    init() {
        var limits = TunnelRouter.Limits()
        limits.relayAvailable = true
        a = TunnelRouter(identity: aKey, preference: .chacha20poly1305, limits: limits, indexSeed: 1)
        b = TunnelRouter(identity: bKey, preference: .chacha20poly1305, limits: limits, indexSeed: 2)
    }

    mutating func enqueue(_ outgoing: [TunnelRouter.Outgoing], fromA: Bool) {
        for out in outgoing { queue.append((fromA, out.datagram, out.to)) }
    }

    mutating func flush() {
        for _ in 0..<20 where !queue.isEmpty {
            let batch = queue
            queue = []
            for item in batch {
                let from: Route
                switch item.via {
                case .relay:
                    relayedDatagrams += 1
                    from = .relay
                case .direct:
                    guard directWorks else { continue }
                    from = .direct(item.toB ? aPublic : bPublic)
                }
                if item.toB {
                    let (out, delivered) = b.receive(item.datagram, from: from, time: time)
                    deliveredToB += delivered.map(\.payload)
                    enqueue(out, fromA: false)
                } else {
                    let (out, _) = a.receive(item.datagram, from: from, time: time)
                    enqueue(out, fromA: true)
                }
            }
        }
    }

    mutating func second(sending payload: [UInt8]?) {
        time.now += 1_000_000
        time.wall += 1000
        if let payload { enqueue(a.send(payload, to: bKey.publicKey, candidates: [bPublic], time: time), fromA: true) }
        enqueue(a.tick(time: time), fromA: true)
        enqueue(b.tick(time: time), fromA: false)
        flush()
    }
}

@Suite struct NATTraversalTests {
    @Test func withoutADirectPathTheRelayCarriesTrafficWithinAboutThreeSeconds() {
        var pair = RelayedPair()
        pair.enqueue(pair.a.send([0], to: pair.bKey.publicKey, candidates: [pair.bPublic], time: pair.time), fromA: true)
        pair.flush()
        #expect(pair.deliveredToB.isEmpty)
        var seconds = 0
        while pair.deliveredToB.isEmpty, seconds < 10 {
            pair.second(sending: nil)
            seconds += 1
        }
        #expect(pair.deliveredToB == [[0]])
        #expect(seconds <= 4, "took \(seconds) s to fall back to the relay")
        #expect(pair.a.path(to: pair.bKey.publicKey, time: pair.time) == .relay)
        #expect(pair.relayedDatagrams > 0)
    }

    @Test func aSessionMovesOffTheRelayWhenADirectPathOpens() {
        var pair = RelayedPair()
        for second in 0..<6 { pair.second(sending: [UInt8(second)]) }
        #expect(pair.a.path(to: pair.bKey.publicKey, time: pair.time) == .relay)
        pair.directWorks = true
        let relayedBefore = pair.relayedDatagrams
        var seconds = 0
        while pair.a.path(to: pair.bKey.publicKey, time: pair.time) != .direct(pair.bPublic) || pair.b.path(to: pair.aKey.publicKey, time: pair.time) != .direct(pair.aPublic), seconds < 20 {
            pair.second(sending: [9])
            seconds += 1
        }
        #expect(pair.a.path(to: pair.bKey.publicKey, time: pair.time) == .direct(pair.bPublic))
        #expect(pair.b.path(to: pair.aKey.publicKey, time: pair.time) == .direct(pair.aPublic))
        #expect(seconds <= 12, "took \(seconds) s to leave the relay")
        let relayedAtSwitch = pair.relayedDatagrams
        for _ in 0..<5 { pair.second(sending: [10]) }
        #expect(pair.relayedDatagrams == relayedAtSwitch, "still relaying after the direct path opened")
        #expect(relayedAtSwitch >= relayedBefore)
        #expect(pair.deliveredToB.count >= 6 + seconds + 5 - 1)
    }

    @Test func aDirectPathIsUsedAtOnceWhenItWorks() {
        var pair = RelayedPair()
        pair.directWorks = true
        pair.enqueue(pair.a.send([1], to: pair.bKey.publicKey, candidates: [pair.bPublic], time: pair.time), fromA: true)
        pair.flush()
        for _ in 0..<5 { pair.second(sending: [2]) }
        #expect(pair.deliveredToB.first == [1])
        #expect(pair.relayedDatagrams == 0)
        #expect(pair.a.path(to: pair.bKey.publicKey, time: pair.time) == .direct(pair.bPublic))
    }
}
