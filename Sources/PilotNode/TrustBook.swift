public import PilotCore
public import PilotCrypto

/// Whom this node trusts, as pure state with a JSON form for the state
/// directory. Trust is mutual and explicit: a node asks (`pilot handshake`),
/// the other approves, or it is approved automatically when both asked or
/// when the request proves the same fleet join token. A peer's key is
/// pinned when it becomes trusted; a different key for the same hostname
/// later is refused loudly. Tags never enter into it.
public struct TrustBook: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var key: PublicKey
        public var hostname: String
        public var justification: String
        public var since: Int64
        /// Topics it may publish beyond its own (`pilot approve NODE
        /// --publish 'metrics/*'`): filters, as text.
        public var publish: [String] = []

        public init(key: PublicKey, hostname: String, justification: String, since: Int64, publish: [String] = []) {
            self.key = key
            self.hostname = hostname
            self.justification = justification
            self.since = since
            self.publish = publish
        }
    }

    public enum Outcome: Equatable, Sendable {
        case trusted(autoApproved: String?)
        case pending
        case refused(String)
    }

    public private(set) var trusted: [PublicKey: Entry] = [:]
    /// The key each trusted hostname is pinned to (lowercased), so that a
    /// request is checked without a walk over every trusted peer.
    private var pins: [String: PublicKey] = [:]
    /// Requests from others, waiting for `approve` or `reject`.
    public private(set) var incoming: [PublicKey: Entry] = [:]
    /// Requests we sent that have no answer yet.
    public private(set) var outgoing: [PublicKey: Entry] = [:]
    public static let maxIncoming = 1000

    public init() {}

    public func isTrusted(_ key: PublicKey) -> Bool { trusted[key] != nil }

    /// A refusal when `hostname` is pinned to another key.
    public func keyChange(hostname: String, key: PublicKey) -> String? {
        guard let pinned = pins[hostname.lowercased()], pinned != key else { return nil }
        return "the key of \(hostname) changed: trusted \(pinned.fingerprint), now offered \(key.fingerprint); refusing it (run 'pilot untrust \(hostname)' if the host was reinstalled)"
    }

    /// We ask `key` to trust us. If it already asked us, both asked: trusted.
    public mutating func sent(to key: PublicKey, hostname: String, justification: String, now: Int64) -> Outcome {
        if let refusal = keyChange(hostname: hostname, key: key) { return .refused(refusal) }
        if trusted[key] != nil { return .trusted(autoApproved: nil) }
        if incoming.removeValue(forKey: key) != nil {
            trust(Entry(key: key, hostname: hostname, justification: justification, since: now))
            return .trusted(autoApproved: "both nodes asked")
        }
        outgoing[key] = Entry(key: key, hostname: hostname, justification: justification, since: now)
        return .pending
    }

    /// `key` asks us to trust it. `sameFleet` is true when it proved our join token.
    public mutating func received(from key: PublicKey, hostname: String, justification: String, sameFleet: Bool, now: Int64) -> Outcome {
        if let refusal = keyChange(hostname: hostname, key: key) { return .refused(refusal) }
        if trusted[key] != nil { return .trusted(autoApproved: nil) }
        let entry = Entry(key: key, hostname: hostname, justification: justification, since: now)
        if outgoing.removeValue(forKey: key) != nil {
            trust(entry)
            return .trusted(autoApproved: "both nodes asked")
        }
        if sameFleet {
            trust(entry)
            return .trusted(autoApproved: "both hold the fleet join token")
        }
        guard incoming.count < Self.maxIncoming || incoming[key] != nil else { return .refused("too many pending trust requests") }
        incoming[key] = entry
        return .pending
    }

    /// The peer approved our request.
    public mutating func approvedByPeer(_ key: PublicKey, now: Int64) -> Bool {
        guard let entry = outgoing.removeValue(forKey: key) else { return false }
        trust(Entry(key: key, hostname: entry.hostname, justification: entry.justification, since: now))
        return true
    }

    public mutating func rejectedByPeer(_ key: PublicKey) {
        outgoing[key] = nil
    }

    /// Trusts the node that asked; `publish` grants it topics beyond its
    /// own, and given alone changes what a trusted node may publish.
    public mutating func approve(_ name: String, now: Int64, publish: [String]? = nil) throws(TrustError) -> Entry {
        if let publish, find(name, in: incoming) == nil, let key = find(name, in: trusted) {
            trusted[key]!.publish = publish
            return trusted[key]!
        }
        guard let key = find(name, in: incoming) else { throw .noPendingRequest(name) }
        var entry = incoming.removeValue(forKey: key)!
        entry.since = now
        if let publish { entry.publish = publish }
        trust(entry)
        return entry
    }

    /// A trusted peer's hostname and granted topics, by its key.
    public func publisher(_ key: PublicKey) -> (hostname: String, grants: [String])? {
        trusted[key].map { ($0.hostname, $0.publish) }
    }

    public mutating func reject(_ name: String) throws(TrustError) -> Entry {
        guard let key = find(name, in: incoming) else { throw .noPendingRequest(name) }
        return incoming.removeValue(forKey: key)!
    }

    public mutating func untrust(_ name: String) throws(TrustError) -> Entry {
        guard let key = find(name, in: trusted) else { throw .notTrusted(name) }
        let entry = trusted.removeValue(forKey: key)!
        let hostname = entry.hostname.lowercased()
        if pins[hostname] == key { pins[hostname] = trusted.values.first { $0.hostname.lowercased() == hostname }?.key }
        return entry
    }

    private mutating func trust(_ entry: Entry) {
        trusted[entry.key] = entry
        pins[entry.hostname.lowercased()] = entry.key
    }

    /// By hostname (case-insensitive) or by key (base64 or fingerprint).
    private func find(_ name: String, in table: [PublicKey: Entry]) -> PublicKey? {
        table.values.first { $0.hostname.lowercased() == name.lowercased() || $0.key.base64 == name || $0.key.fingerprint == name }?.key
    }

    // MARK: JSON

    public var json: JSONValue {
        func list(_ table: [PublicKey: Entry]) -> JSONValue {
            .array(table.values.sorted { $0.hostname < $1.hostname }.map { entry in
                .object(JSONObject([
                    ("key", .string(entry.key.base64)), ("hostname", .string(entry.hostname)),
                    ("justification", .string(entry.justification)), ("since", .number(Double(entry.since))),
                ] + (entry.publish.isEmpty ? [] : [("publish", .array(entry.publish.map { .string($0) }))])))
            })
        }
        return .object(JSONObject([("version", .number(1)), ("trusted", list(trusted)), ("incoming", list(incoming)), ("outgoing", list(outgoing))]))
    }

    public init(json: JSONValue) throws(TrustError) {
        guard json["version"]?.doubleValue == 1 else { throw .corrupt("unknown version") }
        func table(_ name: String) throws(TrustError) -> [PublicKey: Entry] {
            guard case .array(let items)? = json[name] else { throw .corrupt("\"\(name)\" is not a list") }
            var result: [PublicKey: Entry] = [:]
            for item in items {
                guard let keyText = item["key"]?.stringValue, let hostname = item["hostname"]?.stringValue,
                      let key = try? PublicKey(base64: keyText) else { throw .corrupt("an entry of \"\(name)\" is damaged") }
                var publish: [String] = []
                if case .array(let filters)? = item["publish"] { publish = filters.compactMap(\.stringValue) }
                result[key] = Entry(key: key, hostname: hostname, justification: item["justification"]?.stringValue ?? "",
                                    since: item["since"]?.int64Value ?? 0, publish: publish)
            }
            return result
        }
        for entry in try table("trusted").values.sorted(by: { $0.since < $1.since }) { trust(entry) }
        incoming = try table("incoming")
        outgoing = try table("outgoing")
    }
}

public enum TrustError: Error, Equatable, CustomStringConvertible {
    case noPendingRequest(String)
    case notTrusted(String)
    case corrupt(String)

    public var description: String {
        switch self {
        case .noPendingRequest(let name): "no pending trust request from '\(name)' (see 'pilot pending')"
        case .notTrusted(let name): "'\(name)' is not trusted (see 'pilot trust')"
        case .corrupt(let reason): "the trust file is damaged: \(reason)"
        }
    }
}

/// The fleet join token as trust proof: bound to both keys, so it proves
/// the token to exactly this peer and is worthless to anyone else.
public enum TrustProof {
    public static func make(token: String, from requester: PublicKey, to responder: PublicKey) -> String {
        Base64.encode(HMACSHA256.authenticate(Array("pilot-trust/1".utf8) + requester.bytes + responder.bytes, key: Array(token.utf8)))
    }

    public static func verify(_ proof: String, token: String, from requester: PublicKey, to responder: PublicKey) -> Bool {
        ConstantTime.equal(Array(proof.utf8), Array(make(token: token, from: requester, to: responder).utf8))
    }
}
