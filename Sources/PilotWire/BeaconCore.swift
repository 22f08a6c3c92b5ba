public import PilotCore
public import PilotCrypto

/// The beacon as a pure state machine: it tells nodes their public endpoint,
/// introduces two nodes to each other for simultaneous hole punching, and
/// relays tunnel ciphertext between them when no direct path exists,
/// within a rate and byte budget per node. It holds no keys that could
/// read what it relays.
public struct BeaconCore: Sendable {
    public struct Limits: Sendable {
        public var skewMs: Int64 = 300_000
        /// A node not heard from (hello) for this long is forgotten.
        public var nodeExpiry: Int64 = 120_000_000
        public var maxNodes = 100_000
        /// Relay budget per source node: datagrams and bytes per second, with a one-second burst.
        public var relayDatagramsPerSecond = 2000.0
        public var relayBytesPerSecond = 2_000_000.0
        public init() {}
    }

    public struct Outgoing: Equatable, Sendable {
        public var datagram: [UInt8]
        public var to: Endpoint
        public init(datagram: [UInt8], to: Endpoint) {
            self.datagram = datagram
            self.to = to
        }
    }

    public struct Counters: Equatable, Sendable {
        public var hellos = 0
        public var punches = 0
        public var relayedDatagrams = 0
        public var relayedBytes = 0
        public var dropped: [String: Int] = [:]
        public var droppedTotal: Int { dropped.values.reduce(0, +) }
    }

    struct Node: Sendable {
        var endpoint: Endpoint
        var seenAt: Int64
        var lastTimestamp: UInt64
        var datagramTokens: Double
        var byteTokens: Double
        var refilledAt: Int64
    }

    public let limits: Limits
    public private(set) var counters = Counters()
    private var nodes: [PublicKey: Node] = [:]
    private var byEndpoint: [Endpoint: PublicKey] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    public var nodeCount: Int { nodes.count }
    public func endpoint(of key: PublicKey) -> Endpoint? { nodes[key]?.endpoint }

    public mutating func receive(_ datagram: [UInt8], from source: Endpoint, time: TunnelTime) -> [Outgoing] {
        let message: BeaconMessage
        do { message = try BeaconMessage.parse(datagram) } catch {
            drop("malformed datagram")
            return []
        }
        switch message {
        case let .hello(node, timestamp, _):
            guard admit(message, node: node, timestamp: timestamp, time: time) else { return [] }
            guard nodes[node] != nil || nodes.count < limits.maxNodes else { drop("too many nodes"); return [] }
            if let old = nodes[node]?.endpoint, old != source, byEndpoint[old] == node { byEndpoint[old] = nil }
            var entry = nodes[node] ?? Node(endpoint: source, seenAt: time.now, lastTimestamp: 0, datagramTokens: limits.relayDatagramsPerSecond,
                                            byteTokens: limits.relayBytesPerSecond, refilledAt: time.now)
            entry.endpoint = source
            entry.seenAt = time.now
            entry.lastTimestamp = timestamp
            nodes[node] = entry
            byEndpoint[source] = node
            counters.hellos += 1
            return [Outgoing(datagram: BeaconMessage.welcome(observed: source).encoded, to: source)]

        case let .connect(node, target, timestamp, _):
            guard admit(message, node: node, timestamp: timestamp, time: time) else { return [] }
            guard nodes[node]?.endpoint == source else { drop("connect from an endpoint without a hello"); return [] }
            nodes[node]!.lastTimestamp = timestamp
            guard let peer = nodes[target], time.now - peer.seenAt < limits.nodeExpiry else {
                return [Outgoing(datagram: BeaconMessage.refused("the target is not connected to this beacon").encoded, to: source)]
            }
            counters.punches += 1
            return [
                Outgoing(datagram: BeaconMessage.punch(peer: target, endpoint: peer.endpoint).encoded, to: source),
                Outgoing(datagram: BeaconMessage.punch(peer: node, endpoint: source).encoded, to: peer.endpoint),
            ]

        case let .relay(target, inner):
            guard let sender = byEndpoint[source], var entry = nodes[sender], time.now - entry.seenAt < limits.nodeExpiry else {
                drop("relay from an endpoint without a hello")
                return []
            }
            guard let peer = nodes[target], time.now - peer.seenAt < limits.nodeExpiry else { drop("relay to an unknown node"); return [] }
            // Refill the sender's budget, then spend one datagram and its bytes.
            let elapsed = Double(max(0, time.now - entry.refilledAt)) / 1_000_000
            entry.datagramTokens = min(limits.relayDatagramsPerSecond, entry.datagramTokens + elapsed * limits.relayDatagramsPerSecond)
            entry.byteTokens = min(limits.relayBytesPerSecond, entry.byteTokens + elapsed * limits.relayBytesPerSecond)
            entry.refilledAt = time.now
            guard entry.datagramTokens >= 1, entry.byteTokens >= Double(inner.count) else {
                nodes[sender] = entry
                drop("relay budget exceeded")
                return []
            }
            entry.datagramTokens -= 1
            entry.byteTokens -= Double(inner.count)
            nodes[sender] = entry
            counters.relayedDatagrams += 1
            counters.relayedBytes += inner.count
            return [Outgoing(datagram: BeaconMessage.relayed(source: sender, datagram: inner).encoded, to: peer.endpoint)]

        case .welcome, .punch, .relayed, .refused:
            drop("message meant for nodes")
            return []
        }
    }

    /// Forgets nodes that stopped saying hello.
    public mutating func expire(time: TunnelTime) {
        for (key, node) in nodes where time.now - node.seenAt >= limits.nodeExpiry {
            nodes[key] = nil
            if byEndpoint[node.endpoint] == key { byEndpoint[node.endpoint] = nil }
        }
    }

    private mutating func admit(_ message: BeaconMessage, node: PublicKey, timestamp: UInt64, time: TunnelTime) -> Bool {
        do { try message.verifySignature() } catch {
            drop("bad signature")
            return false
        }
        guard abs(Int64(clamping: timestamp) - time.wall) <= limits.skewMs else { drop("stale timestamp"); return false }
        guard timestamp > (nodes[node]?.lastTimestamp ?? 0) else { drop("replayed message"); return false }
        return true
    }

    private mutating func drop(_ reason: String) { counters.dropped[reason, default: 0] += 1 }
}
