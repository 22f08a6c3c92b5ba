public import PilotCore
public import PilotCrypto

/// The registry's requests and responses: JSON objects inside the encrypted
/// channel. Writes (all but a bare heartbeat, see `isSigned`) carry a
/// `signed` text (operation, timestamp, nonce, body) and an Ed25519
/// signature over exactly those bytes, so the registry verifies what was
/// signed without re-encoding anything:
///
///     {"id":1,"op":"register","signed":"{\"op\":\"register\",\"ts\":...,\"nonce\":\"...\",\"body\":{...}}","sig":"..."}
///     {"id":2,"op":"search","body":{"query":"tag:production"}}
///     {"id":1,"ok":true,"body":{...}}   {"id":2,"ok":false,"code":"hostname_taken","error":"..."}
///     {"event":"presence","body":{"address":"1:0001.0000.0003","hostname":"db-01","presence":"offline"}}
public enum RegistryOperation: String, Sendable, CaseIterable {
    case register, heartbeat, deregister, lookup, search, watch
    case setTags = "set_tags"
    case setHostname = "set_hostname"

    public var isWrite: Bool {
        switch self {
        case .register, .heartbeat, .deregister, .setTags, .setHostname: true
        case .lookup, .search, .watch: false
        }
    }

    /// Whether a request with this body carries a signature. Every write
    /// does, except a bare heartbeat (no body): it only says "still here",
    /// and the channel's handshake already proved the key and its AEAD
    /// counters refuse a replayed frame. An Ed25519 verification per node
    /// per keepalive was a third of a 10,000-node registry's CPU. A
    /// heartbeat asking for something (a beacon ticket) stays signed.
    public func isSigned(_ body: JSONObject) -> Bool {
        isWrite && !(self == .heartbeat && body.count == 0)
    }
}

public enum RegistryProtocol {
    public static let maxMessageBytes = 16 * 1024
    /// The nodes of one search reply at most (what is left of a message
    /// after its envelope and signature): larger directories come in pages.
    public static let searchPageBytes = maxMessageBytes - 2 * 1024

    /// A request as the node sends it; writes are signed with its identity
    /// (a bare heartbeat only with `alwaysSign`, for an older registry).
    public static func request(
        id: UInt64, _ operation: RegistryOperation, body: JSONObject = JSONObject(),
        signer: SigningKey, now: Int64, nonce: [UInt8] = SecureRandom.bytes(16), alwaysSign: Bool = false
    ) -> [UInt8] {
        var object = JSONObject([("id", .number(Double(id))), ("op", .string(operation.rawValue))])
        if operation.isSigned(body) || (alwaysSign && operation.isWrite) {
            let signed = JSONValue.object(JSONObject([
                ("op", .string(operation.rawValue)), ("ts", .number(Double(now))),
                ("nonce", .string(Base64.encode(nonce))), ("body", .object(body)),
            ])).description
            object["signed"] = .string(signed)
            object["sig"] = .string(Base64.encode(signer.sign(Array(signed.utf8))))
        } else {
            object["body"] = .object(body)
        }
        return Array(JSONValue.object(object).description.utf8)
    }

    public static func response(id: UInt64, body: JSONObject) -> [UInt8] {
        Array(JSONValue.object(JSONObject([("id", .number(Double(id))), ("ok", .bool(true)), ("body", .object(body))])).description.utf8)
    }

    /// A search page from its nodes' JSON texts, each encoded once (the
    /// page is filled by their sizes): the same bytes as `response` with
    /// `{"nodes":[…],"next":…}`.
    public static func searchResponse(id: UInt64, nodes: [String], next: String?) -> [UInt8] {
        var text = #"{"id":"# + JSONValue.number(Double(id)).description + #","ok":true,"body":{"nodes":["#
        text.reserveCapacity(nodes.reduce(text.utf8.count + 64) { $0 + $1.utf8.count + 1 })
        for (index, node) in nodes.enumerated() {
            if index > 0 { text += "," }
            text += node
        }
        text += "]"
        if let next { text += #","next":"# + JSONValue.string(next).description }
        text += "}}"
        return Array(text.utf8)
    }

    public static func errorResponse(id: UInt64?, _ error: RegistryError) -> [UInt8] {
        let object = JSONObject([
            ("id", id.map { .number(Double($0)) } ?? .null), ("ok", .bool(false)),
            ("code", .string(error.code)), ("error", .string(error.description)),
        ])
        return Array(JSONValue.object(object).description.utf8)
    }

    public static func event(_ event: PresenceEvent) -> [UInt8] {
        let body = JSONObject([
            ("address", .string(event.address.description)), ("hostname", .string(event.hostname)),
            ("presence", .string(event.presence.rawValue)),
        ])
        return Array(JSONValue.object(JSONObject([("event", .string("presence")), ("body", .object(body))])).description.utf8)
    }

    public static func json(_ view: NodeView) -> JSONValue {
        .object(JSONObject([
            ("hostname", .string(view.record.hostname)),
            ("address", .string(view.record.address.description)),
            ("public_key", .string(view.record.publicKey.base64)),
            ("tags", .array(view.record.tags.map { .string($0) })),
            ("endpoints", .array(view.record.endpoints.map { .string($0) })),
            ("online", .bool(view.presence == .online)),
            ("presence", .string(view.presence.rawValue)),
            ("last_seen", view.lastSeen.map { .number(Double($0 / 1000)) } ?? .null),
            ("registered_at", .number(Double(view.record.registeredAt))),
        ]))
    }

    /// Reads a node as `json(_:)` wrote it (the client side of lookups).
    public static func nodeView(_ value: JSONValue) throws(RegistryError) -> NodeView {
        guard let hostname = value["hostname"]?.stringValue, let addressText = value["address"]?.stringValue,
              let keyText = value["public_key"]?.stringValue, case .array(let tags)? = value["tags"],
              let presenceText = value["presence"]?.stringValue, let presence = Presence(rawValue: presenceText)
        else { throw .badRequest("malformed node in response") }
        let address: Address
        let key: PublicKey
        do throws(ParseError) { address = try Address(parsing: addressText) } catch { throw .badRequest(error.description) }
        do throws(CryptoError) { key = try PublicKey(base64: keyText) } catch { throw .badRequest(error.description) }
        var endpoints: [String] = []
        if case .array(let list)? = value["endpoints"] { endpoints = list.compactMap(\.stringValue) }
        let record = NodeRecord(publicKey: key, address: address, hostname: hostname, tags: tags.compactMap(\.stringValue),
                                endpoints: endpoints, registeredAt: value["registered_at"]?.int64Value ?? 0)
        let lastSeen = value["last_seen"]?.int64Value.flatMap { seconds -> Int64? in
            let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : milliseconds
        }
        return NodeView(record: record, presence: presence, lastSeen: lastSeen)
    }

    /// Proof of the fleet join token bound to one channel: the token itself
    /// never travels, and a proof seen on one channel is useless on another.
    public static func joinProof(token: String, handshakeHash: [UInt8]) -> String {
        Base64.encode(HMACSHA256.authenticate(handshakeHash, key: Array(token.utf8)))
    }
}
