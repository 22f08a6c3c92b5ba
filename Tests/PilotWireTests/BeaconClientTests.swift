import PilotCore
import PilotCrypto
import PilotWire
import Testing

/// The node's side of the beacon without sockets: time is passed in.
@Suite struct BeaconClientTests {
    let node = SigningKey.generate(), peer = SigningKey.generate().publicKey, other = SigningKey.generate().publicKey
    let beacon = Endpoint(host: "198.51.100.7", port: 9001)
    let start = TunnelTime(now: 50_000_000, wall: 1_764_100_000_000)
    let registry = SigningKey.generate()

    func ticket(at time: TunnelTime, for key: SigningKey? = nil) -> BeaconTicket {
        BeaconTicket.issue(for: (key ?? node).publicKey, network: 1, now: time.wall, lifetimeMs: 1_800_000, by: registry)
    }

    /// A client that holds a ticket already.
    func ticketed() -> BeaconClient {
        var client = BeaconClient(identity: node, beacon: beacon)
        client.renew(ticket(at: start), time: start)
        return client
    }

    func at(seconds: Double) -> TunnelTime {
        TunnelTime(now: start.now + Int64(seconds * 1_000_000), wall: start.wall + Int64(seconds * 1000))
    }

    @Test func theFirstHelloGoesAtOnceThenOneEveryTwentySeconds() throws {
        var client = ticketed()
        let firstSent = client.hello(time: start)
        let first = try #require(firstSent)
        guard case let .hello(key, timestamp, _, sentTicket) = first else { Issue.record("not a hello: \(first)"); return }
        #expect(key == node.publicKey)
        #expect(sentTicket == ticket(at: start))
        #expect(timestamp == UInt64(start.wall))
        try first.verifySignature()
        #expect(client.nextHelloAt == start.now + 20_000_000)
        #expect(client.hello(time: at(seconds: 0)) == nil)
        #expect(client.hello(time: at(seconds: 19.999)) == nil)
        #expect(client.hello(time: at(seconds: 20)) != nil)
        #expect(client.nextHelloAt == at(seconds: 40).now)
        // A late wake-up (a busy loop) counts from when the hello went.
        #expect(client.hello(time: at(seconds: 45)) != nil)
        #expect(client.nextHelloAt == at(seconds: 65).now)
    }

    @Test func introductionsOnlyWithoutADirectPathAndAtMostEveryFiveSecondsAPeer() throws {
        var client = BeaconClient(identity: node, beacon: beacon)
        // A direct path needs no introduction, and asking was not recorded.
        #expect(client.connect(to: peer, route: .direct(Endpoint(host: "10.0.0.2", port: 4000)), time: start) == nil)
        let askedSent = client.connect(to: peer, route: nil, time: start)
        let asked = try #require(askedSent)
        guard case let .connect(key, target, _, _) = asked else { Issue.record("not a connect: \(asked)"); return }
        #expect(key == node.publicKey && target == peer)
        try asked.verifySignature()
        // Within five seconds: not again for that peer, whatever the route…
        #expect(client.connect(to: peer, route: nil, time: at(seconds: 1)) == nil)
        #expect(client.connect(to: peer, route: .relay, time: at(seconds: 4.999)) == nil)
        // …but another peer is asked about at once.
        #expect(client.connect(to: other, route: nil, time: at(seconds: 1)) != nil)
        // A relayed peer is introduced again (a punch may get it off the relay).
        #expect(client.connect(to: peer, route: .relay, time: at(seconds: 5)) != nil)
    }

    @Test func noHelloBeforeTheFirstTicketAndARenewedTicketGoesAtOnce() throws {
        var client = BeaconClient(identity: node, beacon: beacon)
        #expect(client.hello(time: start) == nil)
        #expect(client.nextHelloAt == start.now + 20_000_000) // looks again later: no busy loop
        // A ticket for another key is not taken.
        let takenForeign = client.renew(ticket(at: start, for: SigningKey.generate()), time: start)
        #expect(!takenForeign)
        #expect(client.hello(time: at(seconds: 1)) == nil)
        let taken = client.renew(ticket(at: at(seconds: 2)), time: at(seconds: 2))
        #expect(taken)
        let firstSent = client.hello(time: at(seconds: 2))
        guard case let .hello(_, _, _, first)? = firstSent else { Issue.record("no hello with the first ticket"); return }
        #expect(first == ticket(at: at(seconds: 2)))
        #expect(client.hello(time: at(seconds: 3)) == nil)
        // The same ticket again changes nothing; a renewed one goes in a hello at once, not 20 s later.
        client.renew(ticket(at: at(seconds: 2)), time: at(seconds: 4))
        #expect(client.hello(time: at(seconds: 4)) == nil)
        client.renew(ticket(at: at(seconds: 900)), time: at(seconds: 900.5))
        let renewedSent = client.hello(time: at(seconds: 900.5))
        guard case let .hello(_, _, _, renewed)? = renewedSent else { Issue.record("no hello with the renewed ticket"); return }
        #expect(renewed == ticket(at: at(seconds: 900)))
        try renewedSent?.verifySignature()
    }

    @Test func withoutABeaconNothingIsSentAndTheRouteIsNotEvenRead() {
        var client = BeaconClient(identity: node, beacon: nil)
        #expect(client.hello(time: start) == nil)
        var routeRead = false
        func route() -> Route? { routeRead = true; return nil }
        #expect(client.connect(to: peer, route: route(), time: start) == nil)
        #expect(!routeRead)
        #expect(client.receive(BeaconMessage.welcome(observed: beacon).encoded, from: beacon) == .dropped("beacon message from elsewhere"))
    }

    @Test func timestampsStrictlyIncreaseSoTheBeaconAdmitsTwoMessagesInOneMillisecond() throws {
        var client = ticketed()
        var core = BeaconCore(issuer: registry.publicKey)
        let source = Endpoint(host: "100.64.0.11", port: 40001)
        let helloSent = client.hello(time: start)
        let hello = try #require(helloSent)
        let connectSent = client.connect(to: peer, route: nil, time: start)
        let connect = try #require(connectSent)
        // The wall clock stepping back does not make a timestamp repeat either.
        let stepBack = TunnelTime(now: start.now + 6_000_000, wall: start.wall - 1000)
        let againSent = client.connect(to: peer, route: nil, time: stepBack)
        let again = try #require(againSent)
        let stamps = [hello, connect, again].compactMap { message -> UInt64? in
            switch message {
            case let .hello(_, timestamp, _, _), let .connect(_, _, timestamp, _): timestamp
            default: nil
            }
        }
        #expect(stamps == [UInt64(start.wall), UInt64(start.wall) + 1, UInt64(start.wall) + 2])
        #expect(core.receive(hello.encoded, from: source, time: start) == [BeaconCore.Outgoing(datagram: BeaconMessage.welcome(observed: source).encoded, to: source)])
        let refused = core.receive(connect.encoded, from: source, time: start)
        #expect(try refused.map { try BeaconMessage.parse($0.datagram) } == [.refused("the target is not connected to this beacon")])
        #expect(core.counters.dropped.isEmpty)
    }

    @Test func staleIntroductionsAreForgottenWithoutChangingADecision() {
        var timing = BeaconClient.Timing()
        timing.maxRemembered = 2
        var client = BeaconClient(identity: node, beacon: beacon, timing: timing)
        let third = SigningKey.generate().publicKey
        #expect(client.connect(to: peer, route: nil, time: start) != nil)
        #expect(client.connect(to: other, route: nil, time: at(seconds: 3)) != nil)
        // Full: `peer` (asked 6 s ago) is forgotten, `other` (3 s ago) is not.
        #expect(client.connect(to: third, route: nil, time: at(seconds: 6)) != nil)
        #expect(client.rememberedPeers == 2)
        #expect(client.connect(to: other, route: nil, time: at(seconds: 6)) == nil)
        #expect(client.connect(to: peer, route: nil, time: at(seconds: 6)) != nil)
    }

    @Test func onlyTheBeaconsOwnDatagramsAreActedOn() {
        var client = BeaconClient(identity: node, beacon: beacon)
        let mapped = Endpoint(host: "203.0.113.9", port: 61000), peerAt = Endpoint(host: "203.0.113.20", port: 41000)
        let welcome = BeaconMessage.welcome(observed: mapped).encoded
        #expect(client.receive(welcome, from: Endpoint(host: "198.51.100.8", port: 9001)) == .dropped("beacon message from elsewhere"))
        #expect(client.observed == nil)
        #expect(client.receive(welcome, from: beacon) == .observed(mapped))
        #expect(client.observed == mapped)
        #expect(client.receive(welcome, from: beacon) == nil) // the same endpoint again: nothing new
        #expect(client.receive(BeaconMessage.welcome(observed: peerAt).encoded, from: beacon) == .observed(peerAt))
        #expect(client.receive(BeaconMessage.punch(peer: peer, endpoint: peerAt).encoded, from: beacon) == .punch(peer, peerAt))
        #expect(client.receive(BeaconMessage.relayed(source: peer, datagram: [1, 2, 3]).encoded, from: beacon) == .relayed([1, 2, 3]))
        #expect(client.receive(BeaconMessage.refused("no").encoded, from: beacon) == .refused("no"))
        #expect(client.receive(BeaconMessage.signedHello(node, timestamp: 1, ticket: nil).encoded, from: beacon) == .dropped("beacon message meant for the beacon"))
        #expect(client.receive(BeaconMessage.relay(target: peer, datagram: [1]).encoded, from: beacon) == .dropped("beacon message meant for the beacon"))
        let malformed = Array(BeaconMessage.welcome(observed: mapped).encoded.prefix(5))
        #expect(client.receive(malformed, from: beacon) == .dropped("malformed beacon message"))
    }
}
