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

/// The node's side of the beacon, as a pure policy with the time passed in:
/// when to say hello, when to ask for an introduction to a peer, timestamps
/// the beacon accepts, and what a datagram from the beacon asks of the node.
/// `TunnelEndpoint` (PilotNode) only carries out what it returns. When to
/// fall back to the beacon's relay, and how often to probe for a direct path
/// past it, is the tunnels' own timing, in `TunnelRouter`.
public struct BeaconClient: Sendable {
    public struct Timing: Sendable {
        /// A hello keeps this node's entry at the beacon (which forgets a
        /// node after `BeaconCore.Limits.nodeExpiry`, 120 s) and keeps the
        /// NAT mapping towards the beacon open.
        public var helloEvery: Int64 = 20_000_000
        /// While a peer has no direct path, at most one introduction per
        /// peer this often: each costs the beacon two punches, and the
        /// tunnel retries its handshake every second in between anyway.
        public var connectEvery: Int64 = 5_000_000
        /// Past this many peers asked about, the ones asked longer than
        /// `connectEvery` ago are forgotten (they no longer hold anything
        /// back), so the memory stays bounded.
        public var maxRemembered = 4096
        public init() {}
    }

    /// What a datagram from the beacon asks of the node.
    public enum Received: Equatable, Sendable {
        /// The beacon sees this node at a new public endpoint.
        case observed(Endpoint)
        /// The beacon introduced `peer` at an endpoint: handshake there now.
        case punch(PublicKey, Endpoint)
        /// A tunnel datagram the relay carried. Whom the beacon names as its
        /// source is not trusted: the tunnel's own authentication decides.
        case relayed([UInt8])
        case refused(String)
        /// Not acted on, for this reason (counted with the tunnel's drops).
        case dropped(String)
    }

    public let identity: SigningKey
    public let timing: Timing
    /// The beacon's address (nil: none configured, so nothing is sent to
    /// it). Only datagrams from exactly there are the beacon's.
    public var beacon: Endpoint?
    /// This node's endpoint as the beacon last reported it.
    public private(set) var observed: Endpoint?
    /// When the next hello is due (monotonic µs); the first is due at once.
    public private(set) var nextHelloAt: Int64 = .min
    private var lastTimestamp: UInt64 = 0
    private var askedAt: [PublicKey: Int64] = [:]

    public init(identity: SigningKey, beacon: Endpoint?, timing: Timing = Timing()) {
        self.identity = identity
        self.beacon = beacon
        self.timing = timing
    }

    /// Peers whose last introduction is remembered (for tests and diagnostics).
    public var rememberedPeers: Int { askedAt.count }

    /// The hello due at `time`, if one is: the first at once, then one
    /// every `helloEvery`. The caller wakes again at `nextHelloAt`.
    public mutating func hello(time: TunnelTime) -> BeaconMessage? {
        guard beacon != nil, time.now >= nextHelloAt else { return nil }
        nextHelloAt = time.now + timing.helloEvery
        return .signedHello(identity, timestamp: timestamp(time))
    }

    /// After a datagram went to `peer`, whose route is now `route`: a
    /// request that the beacon introduce the two nodes, unless the path is
    /// direct (no help needed) or this peer was asked about less than
    /// `connectEvery` ago. `route` is only read when a beacon is configured.
    public mutating func connect(to peer: PublicKey, route: @autoclosure () -> Route?, time: TunnelTime) -> BeaconMessage? {
        guard beacon != nil else { return nil }
        if case .direct? = route() { return nil }
        if let asked = askedAt[peer], time.now - asked < timing.connectEvery { return nil }
        if askedAt.count >= timing.maxRemembered { askedAt = askedAt.filter { time.now - $0.value < timing.connectEvery } }
        askedAt[peer] = time.now
        return .signedConnect(identity, to: peer, timestamp: timestamp(time))
    }

    /// A beacon datagram (`BeaconMessage.isBeaconDatagram`) from `source`;
    /// nil when there is nothing to do (a welcome that repeats what is known).
    public mutating func receive(_ datagram: [UInt8], from source: Endpoint) -> Received? {
        guard source == beacon else { return .dropped("beacon message from elsewhere") }
        guard let message = try? BeaconMessage.parse(datagram) else { return .dropped("malformed beacon message") }
        switch message {
        case .welcome(let endpoint):
            guard endpoint != observed else { return nil }
            observed = endpoint
            return .observed(endpoint)
        case let .punch(peer, endpoint): return .punch(peer, endpoint)
        case let .relayed(_, inner): return .relayed(inner)
        case .refused(let reason): return .refused(reason)
        case .hello, .connect, .relay: return .dropped("beacon message meant for the beacon")
        }
    }

    /// Unix milliseconds, made strictly increasing: the beacon refuses a
    /// timestamp it has seen, so two messages within a millisecond differ.
    private mutating func timestamp(_ time: TunnelTime) -> UInt64 {
        lastTimestamp = max(UInt64(max(0, time.wall)), lastTimestamp + 1)
        return lastTimestamp
    }
}
