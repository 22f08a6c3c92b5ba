public import PilotCore
public import PilotCrypto

/// The beacon as a pure state machine: it tells nodes their public endpoint,
/// introduces two nodes to each other for simultaneous hole punching, and
/// relays tunnel ciphertext between them when no direct path exists. It
/// holds no keys that could read what it relays.
///
/// It serves only keys the registry vouches for: a hello must carry a
/// `BeaconTicket` for its key, signed by `issuer` (the registry's key) and
/// not expired; a node is served until its ticket expires or it stops
/// saying hello, whichever comes first. Everything the beacon sends toward
/// a node on another's behalf (relayed datagrams, introductions) is spent
/// from two budgets: the sender's and the target's, so any number of
/// senders together move at most the target's budget toward one node.
public struct BeaconCore: Sendable {
    public struct Limits: Sendable {
        /// Tolerated difference between this clock and a node's timestamps,
        /// and between this clock and the registry's ticket times.
        public var skewMs: Int64 = 300_000
        /// A node not heard from (hello) for this long is forgotten.
        public var nodeExpiry: Int64 = 120_000_000
        public var maxNodes = 100_000
        /// Relay budget per sending node: datagrams and bytes per second, with a one-second burst.
        public var relayDatagramsPerSecond = 2000.0
        public var relayBytesPerSecond = 2_000_000.0
        /// Relay budget per target node, whoever sends, with a one-second
        /// burst: four senders at their full budget. A hub behind symmetric
        /// NAT with 5,000 relayed agents (8 topics every 30 s, with
        /// acknowledgements, keepalives and probes: about 0.35 datagrams
        /// and 120 bytes a second each) takes about 1,750 datagrams and
        /// 0.6 MB a second.
        public var targetDatagramsPerSecond = 8000.0
        public var targetBytesPerSecond = 8_000_000.0
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

    /// A token bucket of datagrams and bytes, refilled at a rate up to one second's worth.
    struct Budget: Sendable {
        var datagrams: Double
        var bytes: Double
        var refilledAt: Int64

        init(datagramsPerSecond: Double, bytesPerSecond: Double, now: Int64) {
            datagrams = datagramsPerSecond
            bytes = bytesPerSecond
            refilledAt = now
        }

        mutating func refill(now: Int64, datagramsPerSecond: Double, bytesPerSecond: Double) {
            let elapsed = Double(max(0, now - refilledAt)) / 1_000_000
            datagrams = min(datagramsPerSecond, datagrams + elapsed * datagramsPerSecond)
            bytes = min(bytesPerSecond, bytes + elapsed * bytesPerSecond)
            refilledAt = max(refilledAt, now)
        }

        func allows(_ count: Int) -> Bool { datagrams >= 1 && bytes >= Double(count) }

        mutating func spend(_ count: Int) {
            datagrams -= 1
            bytes -= Double(count)
        }
    }

    struct Node: Sendable {
        var endpoint: Endpoint
        var seenAt: Int64
        var lastTimestamp: UInt64
        /// The newest ticket this node showed, already verified.
        var ticket: BeaconTicket
        /// What it may send through the relay, and what may be sent to it.
        var sent: Budget
        var received: Budget
    }

    public let limits: Limits
    /// The registry's key: the one that signs tickets (nil: not learnt yet, so no one is served).
    public private(set) var issuer: PublicKey?
    public private(set) var counters = Counters()
    private var nodes: [PublicKey: Node] = [:]
    private var byEndpoint: [Endpoint: PublicKey] = [:]

    public init(limits: Limits = Limits(), issuer: PublicKey?) {
        self.limits = limits
        self.issuer = issuer
    }

    /// Trusts tickets signed by `key` from now on (the registry's key,
    /// learnt after start); nodes served under another key are forgotten.
    public mutating func trust(issuer key: PublicKey) {
        guard key != issuer else { return }
        issuer = key
        nodes = [:]
        byEndpoint = [:]
    }

    public var nodeCount: Int { nodes.count }
    public func endpoint(of key: PublicKey) -> Endpoint? { nodes[key]?.endpoint }

    public mutating func receive(_ datagram: [UInt8], from source: Endpoint, time: TunnelTime) -> [Outgoing] {
        let message: BeaconMessage
        do { message = try BeaconMessage.parse(datagram) } catch {
            drop("malformed datagram")
            return []
        }
        switch message {
        case let .hello(node, timestamp, _, ticket):
            // The cheap checks first: a flood of hellos costs no signature check.
            guard let ticket else { drop("hello without a ticket"); return [] }
            guard ticket.node == node else { drop("ticket for another key"); return [] }
            guard let issuer else { drop("registry key not known yet"); return [] }
            guard time.wall <= Self.saturating(ticket.expires, plus: limits.skewMs) else { drop("ticket expired"); return [] }
            guard Self.saturating(ticket.issued, plus: -limits.skewMs) <= time.wall else { drop("ticket not yet valid"); return [] }
            guard fresh(node: node, timestamp: timestamp, time: time) else { return [] }
            if nodes[node]?.ticket != ticket {
                do throws(WireError) { try ticket.verify(issuer: issuer) } catch { drop("ticket badly signed"); return [] }
            }
            guard verified(message) else { return [] }
            guard nodes[node] != nil || nodes.count < limits.maxNodes else { drop("too many nodes"); return [] }
            if let old = nodes[node]?.endpoint, old != source, byEndpoint[old] == node { byEndpoint[old] = nil }
            var entry = nodes[node] ?? Node(
                endpoint: source, seenAt: time.now, lastTimestamp: 0, ticket: ticket,
                sent: Budget(datagramsPerSecond: limits.relayDatagramsPerSecond, bytesPerSecond: limits.relayBytesPerSecond, now: time.now),
                received: Budget(datagramsPerSecond: limits.targetDatagramsPerSecond, bytesPerSecond: limits.targetBytesPerSecond, now: time.now))
            entry.endpoint = source
            entry.seenAt = time.now
            entry.lastTimestamp = timestamp
            entry.ticket = ticket
            nodes[node] = entry
            byEndpoint[source] = node
            counters.hellos += 1
            return [Outgoing(datagram: BeaconMessage.welcome(observed: source).encoded, to: source)]

        case let .connect(node, target, timestamp, _):
            guard var entry = nodes[node], entry.endpoint == source else { drop("connect from an endpoint without a hello"); return [] }
            guard served(entry, time: time) else { drop("connect from a node no longer vouched for"); return [] }
            guard fresh(node: node, timestamp: timestamp, time: time), verified(message) else { return [] }
            entry.lastTimestamp = timestamp
            nodes[node] = entry
            guard target != node, var peer = nodes[target], served(peer, time: time), peer.ticket.network == entry.ticket.network else {
                return [Outgoing(datagram: BeaconMessage.refused("the target is not connected to this beacon").encoded, to: source)]
            }
            // The punch toward the target is traffic toward it on the sender's behalf.
            let punch = BeaconMessage.punch(peer: node, endpoint: source).encoded
            guard spend(punch.count, from: &entry, to: &peer, time: time) else {
                nodes[node] = entry
                nodes[target] = peer
                return []
            }
            nodes[node] = entry
            nodes[target] = peer
            counters.punches += 1
            return [
                Outgoing(datagram: BeaconMessage.punch(peer: target, endpoint: peer.endpoint).encoded, to: source),
                Outgoing(datagram: punch, to: peer.endpoint),
            ]

        case let .relay(target, inner):
            guard let sender = byEndpoint[source], var entry = nodes[sender], time.now - entry.seenAt < limits.nodeExpiry else {
                drop("relay from an endpoint without a hello")
                return []
            }
            guard served(entry, time: time) else { drop("relay from a node no longer vouched for"); return [] }
            guard target != sender, var peer = nodes[target], served(peer, time: time) else { drop("relay to an unknown node"); return [] }
            guard peer.ticket.network == entry.ticket.network else { drop("relay to another network"); return [] }
            let spent = spend(inner.count, from: &entry, to: &peer, time: time)
            nodes[sender] = entry
            nodes[target] = peer
            guard spent else { return [] }
            counters.relayedDatagrams += 1
            counters.relayedBytes += inner.count
            return [Outgoing(datagram: BeaconMessage.relayed(source: sender, datagram: inner).encoded, to: peer.endpoint)]

        case .welcome, .punch, .relayed, .refused:
            drop("message meant for nodes")
            return []
        }
    }

    /// Forgets nodes that stopped saying hello, or whose ticket expired.
    public mutating func expire(time: TunnelTime) {
        for (key, node) in nodes where !served(node, time: time) {
            nodes[key] = nil
            if byEndpoint[node.endpoint] == key { byEndpoint[node.endpoint] = nil }
        }
    }

    /// Heard from recently, under a ticket that has not expired (by this clock, give or take the skew).
    private func served(_ node: Node, time: TunnelTime) -> Bool {
        time.now - node.seenAt < limits.nodeExpiry && time.wall <= Self.saturating(node.ticket.expires, plus: limits.skewMs)
    }

    private static func saturating(_ value: Int64, plus delta: Int64) -> Int64 {
        let (sum, overflow) = value.addingReportingOverflow(delta)
        return overflow ? (delta > 0 ? .max : .min) : sum
    }

    /// Spends one datagram of `count` bytes from the sender's budget and the target's, or neither.
    private mutating func spend(_ count: Int, from sender: inout Node, to target: inout Node, time: TunnelTime) -> Bool {
        sender.sent.refill(now: time.now, datagramsPerSecond: limits.relayDatagramsPerSecond, bytesPerSecond: limits.relayBytesPerSecond)
        target.received.refill(now: time.now, datagramsPerSecond: limits.targetDatagramsPerSecond, bytesPerSecond: limits.targetBytesPerSecond)
        guard sender.sent.allows(count) else { drop("relay budget exceeded"); return false }
        guard target.received.allows(count) else { drop("relay target budget exceeded"); return false }
        sender.sent.spend(count)
        target.received.spend(count)
        return true
    }

    /// A timestamp within the skew of this clock and newer than the node's last.
    private mutating func fresh(node: PublicKey, timestamp: UInt64, time: TunnelTime) -> Bool {
        guard abs(Int64(clamping: timestamp) - time.wall) <= limits.skewMs else { drop("stale timestamp"); return false }
        guard timestamp > (nodes[node]?.lastTimestamp ?? 0) else { drop("replayed message"); return false }
        return true
    }

    private mutating func verified(_ message: BeaconMessage) -> Bool {
        do { try message.verifySignature() } catch {
            drop("bad signature")
            return false
        }
        return true
    }

    private mutating func drop(_ reason: String) { counters.dropped[reason, default: 0] += 1 }
}
