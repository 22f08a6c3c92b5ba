import PilotCore
import PilotCrypto
import PilotRegistry
import PilotWire
import Testing

/// A node talking to an engine directly, with the session a handshake would give.
struct FakeNode {
    let key = SigningKey.generate()
    var nextID: UInt64 = 1
    var address = "192.0.2.10"
    var handshakeHash = SecureRandom.bytes(32)

    var session: SessionContext { SessionContext(identity: key.publicKey, handshakeHash: handshakeHash, clientAddress: address) }

    mutating func request(_ op: RegistryOperation, _ body: JSONObject = JSONObject(), now: Int64, nonce: [UInt8] = SecureRandom.bytes(16)) -> [UInt8] {
        defer { nextID += 1 }
        return RegistryProtocol.request(id: nextID, op, body: body, signer: key, now: now, nonce: nonce)
    }
}

func reply(_ outcome: RegistryEngine.Outcome) throws -> JSONValue {
    try JSONValue.parse(outcome.response)
}

@Suite struct RegistryEngineTests {
    let t0: Int64 = 1_764_100_000_000

    func register(_ engine: inout RegistryEngine, _ node: inout FakeNode, _ name: String, tags: [String] = [], now: Int64? = nil, extra: [(String, JSONValue)] = []) throws -> JSONValue {
        var body = JSONObject([("hostname", .string(name)), ("tags", .array(tags.map { .string($0) }))])
        for (key, value) in extra { body[key] = value }
        return try reply(engine.handle(node.request(.register, body, now: now ?? t0), session: node.session, now: now ?? t0))
    }

    /// A directory larger than one message comes in pages, each within the
    /// limit a client reads, every node exactly once, in address order.
    @Test func aLargeDirectoryIsSearchedInPagesThatEachFitAMessage() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var nodes: [FakeNode] = []
        for index in 0..<300 {
            var node = FakeNode()
            node.address = "10.0.\(index / 250).\(index % 250 + 1)"
            _ = try register(&engine, &node, "host-\(index)", tags: ["site-\(index % 3)"])
            nodes.append(node)
        }
        var asker = nodes[0]
        var seen: [String] = [], addresses: [String] = [], pages = 0
        var body = JSONObject([("query", .string(""))])
        while pages < 100 {
            let outcome = engine.handle(asker.request(.search, body, now: t0), session: asker.session, now: t0)
            #expect(outcome.response.count <= RegistryProtocol.maxMessageBytes, "page \(pages): \(outcome.response.count) bytes")
            let answer = try JSONValue.parse(outcome.response, limits: .init(maxBytes: 1 << 20))
            pages += 1
            guard case .array(let page)? = answer["body"]?["nodes"] else { Issue.record("no nodes in \(answer)"); return }
            seen += page.compactMap { $0["hostname"]?.stringValue }
            addresses += page.compactMap { $0["address"]?.stringValue }
            guard let next = answer["body"]?["next"]?.stringValue else { break }
            body["after"] = .string(next)
        }
        #expect(pages > 1)
        #expect(seen.count == 300 && Set(seen).count == 300)
        let parsed = try addresses.map { try Address(parsing: $0) }
        #expect(parsed == parsed.sorted())
        body["after"] = .string("not an address")
        let bad = try reply(engine.handle(asker.request(.search, body, now: t0), session: asker.session, now: t0))
        #expect(bad["ok"] == .bool(false) && (bad["error"]?.stringValue ?? "").contains("after"))
    }

    /// The page assembled from texts is byte for byte what the general
    /// encoder gives for the same reply.
    @Test func aSearchPageIsTheSameBytesAsTheGeneralEncoder() throws {
        let nodes: [JSONValue] = [
            .object(JSONObject([("hostname", .string("a\"b")), ("tags", .array([.string("x")]))])),
            .object(JSONObject([("hostname", .string("c")), ("online", .bool(true))])),
        ]
        for (page, next) in [(nodes, Optional("1:0001.0000.0002")), (nodes, nil), ([], nil), ([nodes[0]], "quote\"d")] {
            var body = JSONObject([("nodes", .array(page))])
            if let next { body["next"] = .string(next) }
            let general = RegistryProtocol.response(id: 4711, body: body)
            let assembled = RegistryProtocol.searchResponse(id: 4711, nodes: page.map(\.description), next: next)
            #expect(String(decoding: assembled, as: UTF8.self) == String(decoding: general, as: UTF8.self))
        }
    }

    @Test func registersHeartbeatsAndLooksUp() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var web = FakeNode()
        let registered = try engine.handle(web.request(.register, JSONObject([("hostname", .string("web-01")), ("tags", .array([.string("web")]))]), now: t0),
                                           session: web.session, now: t0)
        #expect(registered.changed?.hostname == "web-01")
        #expect(try reply(registered)["body"]?["node"]?["address"] == .string("1:0001.0000.0001"))
        let beat = engine.handle(web.request(.heartbeat, now: t0 + 30_000), session: web.session, now: t0 + 30_000)
        #expect(try reply(beat)["ok"] == .bool(true))
        #expect(beat.changed == nil) // heartbeats write nothing to disk

        var other = FakeNode()
        _ = try register(&engine, &other, "db-01")
        let lookup = try reply(engine.handle(other.request(.lookup, JSONObject([("hostname", .string("web-01"))]), now: t0), session: other.session, now: t0))
        #expect(lookup["body"]?["node"]?["public_key"] == .string(web.key.publicKey.base64))
        #expect(lookup["body"]?["node"]?["online"] == .bool(true))
        let missing = try reply(engine.handle(other.request(.lookup, JSONObject([("address", .string("1:0001.0000.0009"))]), now: t0), session: other.session, now: t0))
        #expect(missing["code"] == .string("not_found"))
        // By key: how a node vouches for a key that knocks on its tunnel.
        let byKey = try reply(engine.handle(other.request(.lookup, JSONObject([("public_key", .string(web.key.publicKey.base64))]), now: t0), session: other.session, now: t0))
        #expect(byKey["body"]?["node"]?["hostname"] == .string("web-01"))
        let stranger = FakeNode()
        let unknownKey = try reply(engine.handle(other.request(.lookup, JSONObject([("public_key", .string(stranger.key.publicKey.base64))]), now: t0), session: other.session, now: t0))
        #expect(unknownKey["code"] == .string("not_found"))
        let garbage = try reply(engine.handle(other.request(.lookup, JSONObject([("public_key", .string("not a key"))]), now: t0), session: other.session, now: t0))
        #expect(garbage["code"] == .string("bad_request"))
    }

    @Test func aRegisteredNodeThatAsksGetsABeaconTicketSignedByTheRegistry() throws {
        let registryKey = SigningKey.generate()
        var configuration = RegistryEngine.Configuration()
        configuration.beaconTicketLifetimeMs = 600_000
        var engine = RegistryEngine(configuration: configuration, records: [], now: t0, ticketIssuer: registryKey)
        var web = FakeNode()
        // Not asked for: none (older nodes see the answers they always did).
        #expect(try register(&engine, &web, "web-01")["body"]?["beacon_ticket"] == nil)
        let asked = try register(&engine, &web, "web-01", extra: [("beacon_ticket", .bool(true))])
        let ticket = try BeaconTicket(base64: try #require(asked["body"]?["beacon_ticket"]?.stringValue))
        try ticket.verify(issuer: registryKey.publicKey)
        #expect(ticket.node == web.key.publicKey && ticket.network == 1)
        #expect(ticket.issued == t0 && ticket.expires == t0 + 600_000)
        // Renewal rides on a heartbeat (signed, so only the node itself can ask).
        let later = t0 + 300_000
        let beat = try reply(engine.handle(web.request(.heartbeat, JSONObject([("beacon_ticket", .bool(true))]), now: later), session: web.session, now: later))
        let renewed = try BeaconTicket(base64: try #require(beat["body"]?["beacon_ticket"]?.stringValue))
        #expect(renewed.expires == later + 600_000)
        // A key the registry does not list gets no ticket: its heartbeat is refused.
        var stranger = FakeNode()
        let refused = try reply(engine.handle(stranger.request(.heartbeat, JSONObject([("beacon_ticket", .bool(true))]), now: later), session: stranger.session, now: later))
        #expect(refused["ok"] == .bool(false) && refused["body"]?["beacon_ticket"] == nil)
    }

    @Test func aForgedSignatureIsRefused() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var victim = FakeNode()
        _ = try register(&engine, &victim, "web-01")
        var attacker = FakeNode()
        // The attacker signs with its own key but its channel claims to be the victim's.
        let forged = attacker.request(.setTags, JSONObject([("tags", .array([.string("pwned")]))]), now: t0)
        let outcome = engine.handle(forged, session: victim.session, now: t0)
        #expect(try reply(outcome)["code"] == .string("bad_signature"))
        #expect(outcome.changed == nil)
        // A signature over different bytes than were sent also fails.
        var tampered = String(decoding: victim.request(.setTags, JSONObject([("tags", .array([.string("a")]))]), now: t0), as: UTF8.self)
        tampered = tampered.replacing("[\\\"a\\\"]", with: "[\\\"b\\\"]")
        #expect(try reply(engine.handle(Array(tampered.utf8), session: victim.session, now: t0))["code"] == .string("bad_signature"))
        #expect(engine.directory.lookup(hostname: "web-01", now: t0)?.record.tags == [])
    }

    @Test func aReplayedRequestIsRefused() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var node = FakeNode()
        _ = try register(&engine, &node, "web-01")
        let request = node.request(.setTags, JSONObject([("tags", .array([.string("x")]))]), now: t0 + 10)
        #expect(try reply(engine.handle(request, session: node.session, now: t0 + 10))["ok"] == .bool(true))
        #expect(try reply(engine.handle(request, session: node.session, now: t0 + 20))["code"] == .string("replayed"))
        // Same nonce, new id and time: still a replay.
        let nonce = SecureRandom.bytes(16)
        let tags = JSONObject([("tags", .array([.string("y")]))])
        _ = engine.handle(node.request(.setTags, tags, now: t0 + 30, nonce: nonce), session: node.session, now: t0 + 30)
        #expect(try reply(engine.handle(node.request(.setTags, tags, now: t0 + 40, nonce: nonce), session: node.session, now: t0 + 40))["code"] == .string("replayed"))
    }

    /// A bare heartbeat travels unsigned (the channel proved the key) and is
    /// answered with an empty body; a signed one (an older node) still
    /// counts; an unsigned one cannot ask for a ticket, nor speak for a key
    /// the registry does not list.
    @Test func aBareHeartbeatIsUnsignedAndAnsweredWithNothingButOk() throws {
        var configuration = RegistryEngine.Configuration()
        configuration.offlineAfterMs = 60_000
        var engine = RegistryEngine(configuration: configuration, records: [], now: t0, ticketIssuer: SigningKey.generate())
        var node = FakeNode()
        _ = try register(&engine, &node, "web-01")
        #expect(engine.sweep(now: t0 + 61_000).map(\.presence) == [.offline])

        let bare = node.request(.heartbeat, now: t0 + 62_000)
        let sent = try JSONValue.parse(bare)
        #expect(sent["signed"] == nil && sent["sig"] == nil)
        let beat = engine.handle(bare, session: node.session, now: t0 + 62_000)
        #expect(try reply(beat)["ok"] == .bool(true))
        #expect(try reply(beat)["body"] == .object(JSONObject()))
        #expect(beat.events.map(\.presence) == [.online])
        // The same bytes again (a replay could only come through this channel): still just "alive".
        #expect(try reply(engine.handle(bare, session: node.session, now: t0 + 63_000))["ok"] == .bool(true))

        // Signed, as an older node sends it.
        let signed = RegistryProtocol.request(id: 90, .heartbeat, signer: node.key, now: t0 + 64_000, alwaysSign: true)
        #expect(try JSONValue.parse(signed)["signed"] != nil)
        #expect(try reply(engine.handle(signed, session: node.session, now: t0 + 64_000))["ok"] == .bool(true))

        // An unsigned heartbeat's body is ignored: no ticket without a signature.
        let asking = Array(#"{"id":91,"op":"heartbeat","body":{"beacon_ticket":true}}"#.utf8)
        let answer = try reply(engine.handle(asking, session: node.session, now: t0 + 65_000))
        #expect(answer["ok"] == .bool(true) && answer["body"]?["beacon_ticket"] == nil)
        let renewal = try reply(engine.handle(node.request(.heartbeat, JSONObject([("beacon_ticket", .bool(true))]), now: t0 + 66_000),
                                              session: node.session, now: t0 + 66_000))
        #expect(renewal["body"]?["beacon_ticket"]?.stringValue != nil)
        // Half a signature is not a bare heartbeat.
        let half = Array(#"{"id":92,"op":"heartbeat","sig":"AAAA"}"#.utf8)
        #expect(try reply(engine.handle(half, session: node.session, now: t0 + 67_000))["code"] == .string("bad_request"))

        var stranger = FakeNode()
        #expect(try reply(engine.handle(stranger.request(.heartbeat, now: t0 + 68_000), session: stranger.session, now: t0 + 68_000))["code"] == .string("not_registered"))
    }

    @Test func aReplayOlderThanTheNonceRingIsStillRefused() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var node = FakeNode()
        _ = try register(&engine, &node, "web-01")
        let tags = JSONObject([("tags", .array([.string("web")]))])
        let old = node.request(.setTags, tags, now: t0 + 100)
        #expect(try reply(engine.handle(old, session: node.session, now: t0 + 100))["ok"] == .bool(true))
        for step in 1...(RequestGuard.ringSize * 2) {
            let now = t0 + 100 + Int64(step) * 1000
            #expect(try reply(engine.handle(node.request(.setTags, tags, now: now), session: node.session, now: now))["ok"] == .bool(true))
        }
        // The first request's nonce has left the ring, but its timestamp is older than all it holds.
        #expect(try reply(engine.handle(old, session: node.session, now: t0 + 60_000))["code"] == .string("replayed"))
    }

    @Test func aStaleTimestampIsRefusedInEitherDirection() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var node = FakeNode()
        for skew in [Int64(-301_000), 301_000] {
            let outcome = try reply(engine.handle(node.request(.register, JSONObject([("hostname", .string("a"))]), now: t0 + skew), session: node.session, now: t0))
            #expect(outcome["code"] == .string("stale_timestamp"))
            #expect(outcome["error"]?.stringValue?.contains("check the node's clock") == true)
        }
        #expect(try register(&engine, &node, "a", now: t0)["ok"] == .bool(true))
    }

    @Test func aHostnameTakenByAnotherKeyIsRefusedWithTheOwnerFingerprint() throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        var first = FakeNode(), second = FakeNode()
        _ = try register(&engine, &first, "web-01")
        let refused = try register(&engine, &second, "web-01")
        #expect(refused["code"] == .string("hostname_taken"))
        #expect(refused["error"]?.stringValue?.contains(first.key.publicKey.fingerprint) == true)
        _ = try engine.revoke(hostname: "web-01")
        #expect(try register(&engine, &second, "web-01")["ok"] == .bool(true))
    }

    @Test func theJoinTokenIsProvenPerChannelAndGuardsReads() throws {
        var configuration = RegistryEngine.Configuration()
        configuration.joinToken = "fleet-secret"
        var engine = RegistryEngine(configuration: configuration, records: [], now: t0)
        var node = FakeNode()
        #expect(try register(&engine, &node, "a")["code"] == .string("join_token_required"))
        let wrong = RegistryProtocol.joinProof(token: "guess", handshakeHash: node.handshakeHash)
        #expect(try register(&engine, &node, "a", extra: [("join_proof", .string(wrong))])["code"] == .string("join_token_required"))
        // A proof captured from another channel is useless here.
        let otherChannel = RegistryProtocol.joinProof(token: "fleet-secret", handshakeHash: SecureRandom.bytes(32))
        #expect(try register(&engine, &node, "a", extra: [("join_proof", .string(otherChannel))])["code"] == .string("join_token_required"))
        var outsider = FakeNode()
        #expect(try reply(engine.handle(outsider.request(.search, now: t0), session: outsider.session, now: t0))["code"] == .string("join_token_required"))

        let proof = RegistryProtocol.joinProof(token: "fleet-secret", handshakeHash: node.handshakeHash)
        #expect(try register(&engine, &node, "a", extra: [("join_proof", .string(proof))])["ok"] == .bool(true))
        #expect(try reply(engine.handle(node.request(.search, now: t0), session: node.session, now: t0))["ok"] == .bool(true))
    }

    @Test func aFloodOfNewRegistrationsFromOneAddressDoesNotStopHeartbeats() throws {
        var configuration = RegistryEngine.Configuration()
        configuration.registrationBurst = 5
        configuration.registrationsPerMinute = 5
        var engine = RegistryEngine(configuration: configuration, records: [], now: t0)
        var honest = FakeNode()
        honest.address = "192.0.2.10"
        _ = try register(&engine, &honest, "honest")
        var limited = 0
        for index in 0..<50 {
            var flooder = FakeNode()
            flooder.address = "198.51.100.7"
            if try register(&engine, &flooder, "flood-\(index)")["code"] == .string("rate_limited") { limited += 1 }
        }
        #expect(limited == 45)
        #expect(try reply(engine.handle(honest.request(.heartbeat, now: t0 + 1), session: honest.session, now: t0 + 1))["ok"] == .bool(true))
        // Re-registering a known key is never limited; a new key from another address is not affected.
        #expect(try register(&engine, &honest, "honest", now: t0 + 2)["ok"] == .bool(true))
        var neighbour = FakeNode()
        #expect(try register(&engine, &neighbour, "neighbour")["ok"] == .bool(true))
        // The bucket refills with time.
        var later = FakeNode()
        later.address = "198.51.100.7"
        #expect(try register(&engine, &later, "later", now: t0 + 60_000)["ok"] == .bool(true))
    }

    @Test(arguments: [
        ("not json", "bad_request"),
        (#"{"id":1}"#, "bad_request"),
        (#"{"id":-1,"op":"search"}"#, "bad_request"),
        (#"{"id":1,"op":"explode"}"#, "bad_request"),
        (#"{"id":1,"op":"register","body":{"hostname":"x"}}"#, "bad_request"),
        (#"{"id":1,"op":"register","signed":"{}","sig":"!!"}"#, "bad_signature"),
    ])
    func malformedRequestsGetAClearError(text: String, code: String) throws {
        var engine = RegistryEngine(configuration: .init(), records: [], now: t0)
        let node = FakeNode()
        let outcome = try reply(engine.handle(Array(text.utf8), session: node.session, now: t0))
        #expect(outcome["ok"] == .bool(false))
        #expect(outcome["code"] == .string(code))
        #expect(outcome["error"]?.stringValue?.isEmpty == false)
    }
}

@Suite struct NodeViewParsingTests {
    /// Found by the fuzzer: a registry answer with huge numbers trapped the node.
    @Test(arguments: [#""registered_at":1e19"#, #""last_seen":1e16"#, #""last_seen":-1e300"#, #""registered_at":-3.5"#])
    func hugeOrFractionalNumbersInAnswersNeverTrap(field: String) throws {
        let key = SigningKey.generate().publicKey.base64
        let text = #"{"hostname":"a","address":"1:0001.0000.0001","public_key":""# + key + #"","tags":[],"presence":"online","# + field + "}"
        let view = try RegistryProtocol.nodeView(JSONValue.parse(text))
        #expect(view.record.hostname == "a")
        #expect(view.lastSeen == nil)
    }
}
