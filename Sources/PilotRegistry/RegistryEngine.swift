public import PilotCore
public import PilotCrypto
internal import PilotWire

/// Who is on the other end of a registry channel, as the handshake proved.
public struct SessionContext: Sendable {
    public let identity: PublicKey
    public let handshakeHash: [UInt8]
    /// The client's IP address, for per-address limits.
    public let clientAddress: String

    public init(identity: PublicKey, handshakeHash: [UInt8], clientAddress: String) {
        self.identity = identity
        self.handshakeHash = handshakeHash
        self.clientAddress = clientAddress
    }
}

/// The registry's request handling as pure logic: a decrypted request and
/// the time in, a response and what changed out. The service persists
/// `changed` before it sends `response`.
public struct RegistryEngine: Sendable {
    public struct Configuration: Sendable {
        public var network: UInt16 = 1
        public var offlineAfterMs: Int64 = 120_000
        public var skewMs: Int64 = 300_000
        public var joinToken: String?
        /// New keys registering from one client address: a burst (a whole
        /// office behind one NAT starting at once), then a steady rate.
        public var registrationBurst = 1000
        public var registrationsPerMinute = 600
        /// How long a beacon ticket lasts. Nodes renew at half of it, so the
        /// registry may be away for that long without a node losing the
        /// beacon; a key the registry forgets is served for at most this long.
        public var beaconTicketLifetimeMs: Int64 = 1_800_000
        /// Unsigned bare heartbeats (`RegistryOperation.isSigned`); false
        /// answers them as a registry before them did, which nodes must
        /// cope with (they sign from then on).
        public var acceptsBareHeartbeats = true
        public init() {}
    }

    public struct Outcome: Sendable {
        public var response: [UInt8]
        public var changed: NodeRecord?
        public var events: [PresenceEvent] = []
        public var startWatching = false
    }

    public let configuration: Configuration
    /// The registry's identity, which signs beacon tickets (nil: none are issued).
    let ticketIssuer: SigningKey?
    public private(set) var directory: Directory
    private var requestGuard: RequestGuard
    private var registrations: RateLimiter

    public init(configuration: Configuration, records: [NodeRecord], now: Int64, ticketIssuer: SigningKey? = nil) {
        self.configuration = configuration
        self.ticketIssuer = ticketIssuer
        directory = Directory(network: configuration.network, timing: .init(offlineAfterMs: configuration.offlineAfterMs),
                              records: records, now: now)
        requestGuard = RequestGuard(skewMs: configuration.skewMs)
        registrations = RateLimiter(burst: configuration.registrationBurst, perMinute: configuration.registrationsPerMinute)
    }

    public mutating func sweep(now: Int64) -> [PresenceEvent] { directory.sweep(now: now) }

    public mutating func revoke(hostname: String) throws(RegistryError) -> NodeRecord {
        let record = try directory.revoke(hostname: hostname)
        requestGuard.forget(record.publicKey)
        return record
    }

    public mutating func handle(_ message: [UInt8], session: SessionContext, now: Int64) -> Outcome {
        var id: UInt64?
        do {
            let json: JSONValue
            do { json = try JSONValue.parse(message, limits: .init(maxBytes: RegistryProtocol.maxMessageBytes, maxDepth: 8)) } catch {
                throw RegistryError.badRequest(error.description)
            }
            guard let number = json["id"]?.doubleValue, number >= 0, number < 9e15, number == number.rounded() else {
                throw RegistryError.badRequest("\"id\" must be a whole number")
            }
            id = UInt64(number)
            guard let opText = json["op"]?.stringValue, let operation = RegistryOperation(rawValue: opText) else {
                throw RegistryError.badRequest("unknown operation \(json["op"]?.description ?? "(none)")")
            }
            let body: JSONObject
            if configuration.acceptsBareHeartbeats, operation == .heartbeat, json["signed"] == nil, json["sig"] == nil {
                // A bare heartbeat (see `RegistryOperation.isSigned`): whatever body it carries is ignored.
                body = JSONObject()
            } else if operation.isWrite {
                body = try verifiedBody(json, operation, session: session, now: now)
            } else {
                body = json["body"]?.objectValue ?? JSONObject()
            }
            return try dispatch(operation, body: body, id: id!, session: session, now: now)
        } catch let error as RegistryError {
            return Outcome(response: RegistryProtocol.errorResponse(id: id, error))
        } catch {
            return Outcome(response: RegistryProtocol.errorResponse(id: id, .badRequest("\(error)")))
        }
    }

    private mutating func verifiedBody(_ json: JSONValue, _ operation: RegistryOperation, session: SessionContext, now: Int64) throws -> JSONObject {
        guard let signed = json["signed"]?.stringValue, let signatureText = json["sig"]?.stringValue else {
            throw RegistryError.badRequest("a \(operation.rawValue) request must be signed")
        }
        do {
            try session.identity.verify(try Base64.decode(signatureText, what: "signature"), for: Array(signed.utf8))
        } catch {
            throw RegistryError.badSignature
        }
        let inner: JSONValue
        do { inner = try JSONValue.parse(signed, limits: .init(maxBytes: RegistryProtocol.maxMessageBytes, maxDepth: 6)) } catch {
            throw RegistryError.badRequest("signed part: \(error)")
        }
        guard inner["op"]?.stringValue == operation.rawValue else { throw RegistryError.badRequest("signed operation differs from \"op\"") }
        guard let ts = inner["ts"]?.doubleValue, ts == ts.rounded(), abs(ts) < 9e15 else { throw RegistryError.badRequest("\"ts\" must be Unix milliseconds") }
        guard let nonceText = inner["nonce"]?.stringValue, let nonce = try? Base64.decode(nonceText) else {
            throw RegistryError.badRequest("\"nonce\" must be base64")
        }
        try requestGuard.admit(key: session.identity, timestamp: Int64(ts), nonce: nonce, now: now)
        return inner["body"]?.objectValue ?? JSONObject()
    }

    private mutating func dispatch(_ operation: RegistryOperation, body: JSONObject, id: UInt64, session: SessionContext, now: Int64) throws -> Outcome {
        let key = session.identity
        let known = directory.record(for: key)
        if configuration.joinToken != nil, operation != .register, known?.isListed != true {
            throw operation.isWrite ? RegistryError.notRegistered : RegistryError.joinTokenRequired
        } else if let token = configuration.joinToken, operation == .register {
            let expected = RegistryProtocol.joinProof(token: token, handshakeHash: session.handshakeHash)
            guard let proof = body["join_proof"]?.stringValue, ConstantTime.equal(Array(proof.utf8), Array(expected.utf8)) else {
                throw RegistryError.joinTokenRequired
            }
        }

        switch operation {
        case .register:
            if known == nil, !registrations.allow(session.clientAddress, now: now) {
                throw RegistryError.rateLimited("too many new registrations from \(session.clientAddress); try again in a minute")
            }
            let (record, events) = try directory.register(
                key: key, hostname: try string(body, "hostname"), tags: try strings(body, "tags"),
                endpoints: try strings(body, "endpoints"), now: now)
            return Outcome(response: respond(id, key, now, ticket: body["beacon_ticket"] == .bool(true)), changed: record, events: events)
        case .heartbeat:
            let events = try directory.heartbeat(key: key, now: now)
            // Only a ticket renewal wants an answer with content; a plain
            // heartbeat's answer is just "ok" (10,000 node views a keepalive
            // encoded for nobody to read).
            guard body["beacon_ticket"] == .bool(true) else {
                return Outcome(response: RegistryProtocol.response(id: id, body: JSONObject()), events: events)
            }
            return Outcome(response: respond(id, key, now, ticket: true), events: events)
        case .setTags:
            let record = try directory.setTags(key: key, tags: try strings(body, "tags"))
            return Outcome(response: respond(id, key, now), changed: record)
        case .setHostname:
            let record = try directory.setHostname(key: key, hostname: try string(body, "hostname"))
            return Outcome(response: respond(id, key, now), changed: record)
        case .deregister:
            let record = try directory.deregister(key: key)
            return Outcome(response: RegistryProtocol.response(id: id, body: JSONObject([("address", .string(record.address.description))])), changed: record)
        case .lookup:
            let view: NodeView?
            if let hostname = body["hostname"]?.stringValue {
                view = directory.lookup(hostname: hostname, now: now)
                guard let view else { throw RegistryError.notFound("named '\(hostname)'") }
                return Outcome(response: RegistryProtocol.response(id: id, body: JSONObject([("node", RegistryProtocol.json(view))])))
            } else if let text = body["address"]?.stringValue {
                let address: Address
                do { address = try Address(parsing: text) } catch { throw RegistryError.badRequest(error.description) }
                view = directory.lookup(address: address, now: now)
                guard let view else { throw RegistryError.notFound("at \(address)") }
                return Outcome(response: RegistryProtocol.response(id: id, body: JSONObject([("node", RegistryProtocol.json(view))])))
            } else if let text = body["public_key"]?.stringValue {
                // How a node vouches for a key that knocks on its tunnel (hardening: handshakes only from known keys).
                let key: PublicKey
                do throws(CryptoError) { key = try PublicKey(base64: text) } catch { throw RegistryError.badRequest("\"public_key\": \(error)") }
                view = directory.view(key, now: now)
                guard let view else { throw RegistryError.notFound("with that key") }
                return Outcome(response: RegistryProtocol.response(id: id, body: JSONObject([("node", RegistryProtocol.json(view))])))
            }
            throw RegistryError.badRequest("lookup needs \"hostname\", \"address\" or \"public_key\"")
        case .search:
            // One page of nodes in address order, as many as fit one message;
            // "next" says where the following page starts ("after").
            let query = body["query"]?.stringValue ?? ""
            let onlineOnly = body["online"] == .bool(true)
            var after: Address?
            if let text = body["after"]?.stringValue {
                do throws(ParseError) { after = try Address(parsing: text) } catch { throw RegistryError.badRequest("\"after\": \(error)") }
            }
            var nodes: [String] = [], bytes = 0
            var next: String?, lastAddress: String?
            // No node's entry is under 100 bytes: a page never holds more than this.
            let most = RegistryProtocol.searchPageBytes / 100
            let views = directory.search(query, onlineOnly: onlineOnly, now: now, after: after, limit: most)
            for view in views {
                let node = RegistryProtocol.json(view).description
                let size = node.utf8.count + 1
                guard nodes.isEmpty || bytes + size <= RegistryProtocol.searchPageBytes else {
                    next = lastAddress
                    break
                }
                nodes.append(node)
                lastAddress = view.record.address.description
                bytes += size
            }
            if next == nil, views.count == most { next = lastAddress } // there may be more
            return Outcome(response: RegistryProtocol.searchResponse(id: id, nodes: nodes, next: next))
        case .watch:
            var outcome = Outcome(response: RegistryProtocol.response(id: id, body: JSONObject()))
            outcome.startWatching = true
            return outcome
        }
    }

    /// The node as the registry now holds it, and a fresh beacon ticket
    /// when the (signed) request asked for one: only a registered key gets here.
    private func respond(_ id: UInt64, _ key: PublicKey, _ now: Int64, ticket: Bool = false) -> [UInt8] {
        guard let view = directory.view(key, now: now) else { return RegistryProtocol.response(id: id, body: JSONObject()) }
        var body = JSONObject([("node", RegistryProtocol.json(view))])
        if ticket, let ticketIssuer {
            let issued = BeaconTicket.issue(for: key, network: configuration.network, now: now,
                                            lifetimeMs: configuration.beaconTicketLifetimeMs, by: ticketIssuer)
            body["beacon_ticket"] = .string(issued.base64)
        }
        return RegistryProtocol.response(id: id, body: body)
    }

    private func string(_ body: JSONObject, _ field: String) throws(RegistryError) -> String {
        guard let value = body[field]?.stringValue else { throw .badRequest("\"\(field)\" must be a string") }
        return value
    }

    private func strings(_ body: JSONObject, _ field: String) throws(RegistryError) -> [String] {
        guard let value = body[field] else { return [] }
        guard case .array(let items) = value, items.count <= 64 else { throw .badRequest("\"\(field)\" must be a list of strings") }
        return try items.map { (item: JSONValue) throws(RegistryError) -> String in
            guard let text = item.stringValue else { throw .badRequest("\"\(field)\" must be a list of strings") }
            return text
        }
    }
}

extension JSONValue {
    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }
}
