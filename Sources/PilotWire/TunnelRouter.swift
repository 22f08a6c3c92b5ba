public import PilotCore
public import PilotCrypto

/// Every tunnel of a node, behind its one UDP socket, as a pure state
/// machine: which peer a datagram belongs to (by session index), where to
/// send (the path the peer last spoke from, else every candidate endpoint
/// at once, so the first that answers becomes the path), and what was
/// dropped and why.
public struct TunnelRouter: Sendable {
    public struct Outgoing: Equatable, Sendable {
        public var datagram: [UInt8]
        public var to: Endpoint
    }

    public struct Delivery: Equatable, Sendable {
        public var from: PublicKey
        public var payload: [UInt8]
    }

    public struct Limits: Sendable {
        public var maxPeers = 4096
        public init() {}
    }

    struct PeerState: Sendable {
        var tunnel: TunnelPeer
        var candidates: [Endpoint]
        var path: Endpoint?
        var indices: [UInt32] = []
    }

    public let identity: SigningKey
    public let preference: AEADAlgorithm
    public let timing: TunnelPeer.Timing
    public let limits: Limits
    private var peers: [PublicKey: PeerState] = [:]
    private var indexOwner: [UInt32: PublicKey] = [:]
    private var indexState: UInt64
    /// Dropped datagrams by reason (forged, replayed, unknown session, …).
    public private(set) var dropped: [String: Int] = [:]

    public init(identity: SigningKey, preference: AEADAlgorithm, timing: TunnelPeer.Timing = .init(), limits: Limits = .init(),
                indexSeed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        self.identity = identity
        self.preference = preference
        self.timing = timing
        self.limits = limits
        indexState = indexSeed
    }

    public func path(to peer: PublicKey) -> Endpoint? { peers[peer]?.path }
    public func isEstablished(with peer: PublicKey) -> Bool { peers[peer]?.tunnel.isEstablished ?? false }
    public func algorithm(with peer: PublicKey) -> AEADAlgorithm? { peers[peer]?.tunnel.algorithm }
    public var droppedTotal: Int { dropped.values.reduce(0, +) }

    /// Sends `payload` to `peer`, whose reachable endpoints (from the
    /// registry) are `candidates`.
    public mutating func send(_ payload: [UInt8], to peer: PublicKey, candidates: [Endpoint], time: TunnelTime) -> [Outgoing] {
        guard peer != identity.publicKey else { count("a node cannot tunnel to itself"); return [] }
        if peers[peer] == nil {
            guard peers.count < limits.maxPeers else { count("too many peers"); return [] }
            peers[peer] = PeerState(tunnel: TunnelPeer(identity: identity, peer: peer, preference: preference, timing: timing), candidates: candidates)
        } else if !candidates.isEmpty {
            peers[peer]!.candidates = candidates
        }
        let index = freshIndex()
        let actions = peers[peer]!.tunnel.send(payload, time: time, freshIndex: index)
        return apply(actions, peer: peer).outgoing
    }

    /// One datagram from the socket.
    public mutating func receive(_ datagram: [UInt8], from source: Endpoint, time: TunnelTime) -> (outgoing: [Outgoing], delivered: [Delivery]) {
        let frame: TunnelFrame
        do { frame = try TunnelFrame.parse(datagram) } catch {
            count("malformed datagram")
            return ([], [])
        }
        switch frame {
        case let .initiation(senderIndex, message):
            let read: (handshake: Handshake, initiator: PublicKey, timestamp: UInt64)
            do { read = try TunnelPeer.readInitiation(message, identity: identity, preference: preference) } catch {
                count("bad handshake initiation")
                return ([], [])
            }
            if peers[read.initiator] == nil {
                guard peers.count < limits.maxPeers else { count("too many peers"); return ([], []) }
                peers[read.initiator] = PeerState(tunnel: TunnelPeer(identity: identity, peer: read.initiator, preference: preference, timing: timing), candidates: [])
            }
            let index = freshIndex()
            let actions = peers[read.initiator]!.tunnel.respond(to: read.handshake, senderIndex: senderIndex, timestamp: read.timestamp,
                                                               time: time, localIndex: index)
            if actions.contains(where: { if case .established = $0 { true } else { false } }) {
                peers[read.initiator]!.path = source // it proved its key from there
            }
            return apply(actions, peer: read.initiator)
        case .response(_, let receiverIndex, _), .transport(let receiverIndex, _):
            guard let peer = indexOwner[receiverIndex], peers[peer] != nil else {
                count("datagram for an unknown session")
                return ([], [])
            }
            let actions = peers[peer]!.tunnel.receive(frame, time: time)
            if actions.contains(where: { if case .dropped = $0 { false } else { true } }) || actions.isEmpty {
                // Authenticated: the peer is reachable where this came from (roaming, NAT rebinding).
                peers[peer]!.path = source
            }
            return apply(actions, peer: peer)
        }
    }

    /// Timers of every tunnel; call about once a second.
    public mutating func tick(time: TunnelTime) -> [Outgoing] {
        var outgoing: [Outgoing] = []
        for peer in Array(peers.keys) {
            let index = freshIndex()
            let actions = peers[peer]!.tunnel.tick(time: time, freshIndex: index)
            outgoing += apply(actions, peer: peer).outgoing
        }
        return outgoing
    }

    private mutating func apply(_ actions: [TunnelPeer.Action], peer: PublicKey) -> (outgoing: [Outgoing], delivered: [Delivery]) {
        var outgoing: [Outgoing] = []
        var delivered: [Delivery] = []
        guard let state = peers[peer] else { return ([], []) }
        for action in actions {
            switch action {
            case .transmit(let datagram):
                let targets = state.path.map { [$0] } ?? state.candidates
                if targets.isEmpty { count("no known endpoint for the peer") }
                outgoing += targets.map { Outgoing(datagram: datagram, to: $0) }
            case .deliver(let payload):
                delivered.append(Delivery(from: peer, payload: payload))
            case .established:
                break
            case .dropped(let reason):
                count(Self.category(reason))
            }
        }
        // Keep the index table in step with the sessions the tunnel holds.
        let live = state.tunnel.localIndices
        if live != state.indices {
            for index in state.indices where !live.contains(index) { indexOwner[index] = nil }
            for index in live { indexOwner[index] = peer }
            peers[peer]!.indices = live
        }
        return (outgoing, delivered)
    }

    private mutating func freshIndex() -> UInt32 {
        while true {
            // SplitMix64 step: unpredictable enough for an identifier, never 0, never in use.
            indexState &+= 0x9E37_79B9_7F4A_7C15
            var z = indexState
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            let index = UInt32(truncatingIfNeeded: z ^ (z >> 31))
            if index != 0, indexOwner[index] == nil { return index }
        }
    }

    private mutating func count(_ reason: String) { dropped[reason, default: 0] += 1 }

    /// Groups drop reasons so the counters stay few (no key or counter in them).
    static func category(_ reason: String) -> String {
        if reason.contains("already received") { return "replayed frame" }
        if reason.contains("authentication") { return "forged or corrupt frame" }
        if reason.contains("older than the replay window") { return "frame older than the replay window" }
        if reason.hasPrefix("replayed handshake") { return "replayed handshake initiation" }
        if reason.contains("queue") { return "queue full" }
        if reason.contains("no handshake answer") { return "peer unreachable" }
        return reason.split(separator: ":").first.map(String.init) ?? reason
    }
}
