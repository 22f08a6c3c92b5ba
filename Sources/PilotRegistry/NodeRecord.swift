public import PilotCore
public import PilotCrypto

/// What the registry knows of one node.
public struct NodeRecord: Equatable, Sendable {
    public var publicKey: PublicKey
    public var address: Address
    /// Empty once the node deregistered or its name was revoked: the key
    /// keeps its address, the name is free for others.
    public var hostname: String
    public var tags: [String]
    public var endpoints: [String]
    public var registeredAt: Int64

    public init(publicKey: PublicKey, address: Address, hostname: String, tags: [String], endpoints: [String], registeredAt: Int64) {
        self.publicKey = publicKey
        self.address = address
        self.hostname = hostname
        self.tags = tags
        self.endpoints = endpoints
        self.registeredAt = registeredAt
    }

    public var isListed: Bool { !hostname.isEmpty }
}

public enum Presence: String, Sendable, Equatable {
    case online, offline
    /// After a registry restart, until a full offline window has passed.
    case unknown
}

/// A change of a node's presence, pushed to watchers (the aggregator turns
/// `offline` into a host-down alert).
public struct PresenceEvent: Equatable, Sendable {
    public var address: Address
    public var hostname: String
    public var presence: Presence

    public init(address: Address, hostname: String, presence: Presence) {
        self.address = address
        self.hostname = hostname
        self.presence = presence
    }
}

/// A node as lookups and listings show it.
public struct NodeView: Equatable, Sendable {
    public var record: NodeRecord
    public var presence: Presence
    /// Unix milliseconds of the last heartbeat this registry process saw.
    public var lastSeen: Int64?

    public init(record: NodeRecord, presence: Presence, lastSeen: Int64?) {
        self.record = record
        self.presence = presence
        self.lastSeen = lastSeen
    }
}

public enum Tags {
    public static let maxCount = 10

    /// `[a-z0-9-]{1,32}`, at most ten, duplicates dropped, order kept.
    public static func validate(_ tags: [String]) throws(RegistryError) -> [String] {
        var result: [String] = []
        for tag in tags {
            guard (1...32).contains(tag.utf8.count), tag.utf8.allSatisfy({ byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || byte == UInt8(ascii: "-")
            }) else {
                throw .badRequest("invalid tag '\(tag.prefix(40))': use 1 to 32 of a-z, 0-9 and '-'")
            }
            if !result.contains(tag) { result.append(tag) }
        }
        guard result.count <= maxCount else { throw .badRequest("too many tags: \(result.count), at most \(maxCount)") }
        return result
    }
}

public enum RegistryError: Error, Equatable, CustomStringConvertible {
    case badRequest(String)
    case badSignature
    case staleTimestamp(skewSeconds: Int64)
    case replayed
    case hostnameTaken(String, ownerFingerprint: String)
    case notRegistered
    case notFound(String)
    case joinTokenRequired
    case rateLimited(String)

    public var code: String {
        switch self {
        case .badRequest: "bad_request"
        case .badSignature: "bad_signature"
        case .staleTimestamp: "stale_timestamp"
        case .replayed: "replayed"
        case .hostnameTaken: "hostname_taken"
        case .notRegistered: "not_registered"
        case .notFound: "not_found"
        case .joinTokenRequired: "join_token_required"
        case .rateLimited: "rate_limited"
        }
    }

    public var description: String {
        switch self {
        case .badRequest(let reason): "bad request: \(reason)"
        case .badSignature: "the request's signature does not verify with this node's key"
        case .staleTimestamp(let skew): "the request's timestamp is \(skew) s away from the registry's clock (more than the allowed skew); check the node's clock"
        case .replayed: "the request was already received (replay)"
        case let .hostnameTaken(name, owner): "hostname '\(name)' belongs to another key (\(owner)); the registry's operator can release it with 'pilot registry revoke \(name)'"
        case .notRegistered: "this node is not registered"
        case .notFound(let what): "no node \(what)"
        case .joinTokenRequired: "this registry requires the fleet join token (pilot init --join-token)"
        case .rateLimited(let what): "rate limited: \(what)"
        }
    }
}
