public import PilotCore
public import PilotCrypto

/// Where a tunnel datagram goes: straight to an endpoint, or through the
/// beacon's relay (which forwards the ciphertext to the peer).
public enum Route: Hashable, Sendable, CustomStringConvertible {
    case direct(Endpoint)
    case relay

    public var description: String {
        switch self {
        case .direct(let endpoint): endpoint.description
        case .relay: "relay"
        }
    }
}

/// Every tunnel of a node, behind its one UDP socket, as a pure state
/// machine: which peer a datagram belongs to (by session index), and where
/// to send it. NAT traversal lives here:
///
/// - first, every candidate endpoint at once (LAN and public addresses from
///   the registry, and the one a beacon introduction gives), so whichever
///   answers becomes the path;
/// - after `relayAfter` without a direct answer, through the beacon's relay;
/// - while relayed, an encrypted keepalive of its own goes to the direct
///   endpoints every `probeEvery`; the first authenticated direct datagram
///   moves the session off the relay (both sides then prefer the direct path).
public struct TunnelRouter: Sendable {
    public struct Outgoing: Equatable, Sendable {
        public var datagram: [UInt8]
        public var to: Route
        public var peer: PublicKey
    }

    public struct Delivery: Equatable, Sendable {
        public var from: PublicKey
        public var payload: [UInt8]
    }

    public struct Limits: Sendable {
        /// Peers held at most. Only keys this node admits (see `receive`)
        /// get an entry, and idle ones are forgotten, so the table holds
        /// what is in use; the ceiling is for configuration (`--max-peers`).
        public var maxPeers = 100_000
        /// A peer with no session, no handshake and nothing queued for this
        /// long is forgotten (its newest initiation timestamp is kept).
        public var forgetAfter: Int64 = 60_000_000
        public var handshakes = HandshakeCookies.Guard.Limits()
        /// Whether a beacon relay is configured.
        public var relayAvailable = false
        public var relayAfter: Int64 = 3_000_000
        public var probeEvery: Int64 = 5_000_000
        /// A path is current while datagrams came over it this recently.
        public var pathFresh: Int64 = 15_000_000
        public init() {}
    }

    struct PeerState: Sendable {
        var tunnel: TunnelPeer
        var candidates: [Endpoint]
        var direct: Endpoint?
        var lastDirectAt: Int64?
        var lastRelayedAt: Int64?
        var firstAttemptAt: Int64?
        var lastProbeAt: Int64?
        var indices: [UInt32] = []
    }

    public let identity: SigningKey
    public let preference: AEADAlgorithm
    public let timing: TunnelPeer.Timing
    public let limits: Limits
    /// The peers' state in slots, found by key once per call (`slots`)
    /// and by session index for every datagram (`indexOwner`): a datagram
    /// costs one lookup of a 4-byte index, not several hashes of a 32-byte
    /// key and copies of the peer's state. Freed slots are reused.
    private var states: [PeerState?] = []
    private var freeSlots: [Int] = []
    private var slots: [PublicKey: Int] = [:]
    private var indexOwner: [UInt32: Int] = [:]
    /// When each slot's timers next want `tick` (`TunnelPeer.nextDeadline`,
    /// relay probes, forgetting): a tick costs the peers due, not a walk
    /// over all of them every second (a hub holds 10,000).
    private var wake = DeadlineQueue<Int>()
    private var indexState: UInt64
    /// Dropped datagrams by reason (forged, replayed, unknown session, …).
    public private(set) var dropped: [String: Int] = [:]
    private var handshakeGuard: HandshakeCookies.Guard
    /// The newest initiation timestamp answered, per peer: a recorded
    /// initiation replayed later is refused. It outlives the peer's entry,
    /// and the node keeps it across restarts (`Note.answered`).
    public private(set) var floors: [PublicKey: UInt64]
    private var notes: [Note] = []

    /// What the router asks of the node around it, taken with `takeNotes`.
    public enum Note: Equatable, Sendable {
        /// An initiation from a key this node does not admit (yet): ask
        /// the registry whether it lists it.
        case vouch(PublicKey)
        /// An initiation was answered: remember its timestamp across restarts.
        case answered(PublicKey, UInt64)
    }

    public init(identity: SigningKey, preference: AEADAlgorithm, timing: TunnelPeer.Timing = .init(), limits: Limits = .init(),
                indexSeed: UInt64 = UInt64.random(in: 1...UInt64.max), floors: [PublicKey: UInt64] = [:]) {
        self.identity = identity
        self.preference = preference
        self.timing = timing
        self.limits = limits
        indexState = indexSeed
        handshakeGuard = HandshakeCookies.Guard(responder: identity.publicKey, limits: limits.handshakes)
        self.floors = floors
    }

    public var peerCount: Int { slots.count }
    public var isUnderLoad: Bool { handshakeGuard.isUnderLoad }

    public mutating func takeNotes() -> [Note] {
        guard !notes.isEmpty else { return [] }
        defer { notes.removeAll() }
        return notes
    }

    /// The route datagrams to `peer` take now.
    public func path(to peer: PublicKey, time: TunnelTime? = nil) -> Route? {
        slots[peer].flatMap { path(slot: $0, time: time) }
    }

    private func path(slot: Int, time: TunnelTime?) -> Route? {
        guard let state = states[slot] else { return nil }
        let now = time?.now ?? max(state.lastDirectAt ?? .min, state.lastRelayedAt ?? .min)
        if let direct = state.direct, let at = state.lastDirectAt, now - at < limits.pathFresh { return .direct(direct) }
        if state.lastRelayedAt != nil { return .relay }
        return state.direct.map { .direct($0) }
    }

    public func isEstablished(with peer: PublicKey) -> Bool { slots[peer].flatMap { states[$0]?.tunnel.isEstablished } ?? false }
    public func algorithm(with peer: PublicKey) -> AEADAlgorithm? { slots[peer].flatMap { states[$0]?.tunnel.algorithm } }
    public var droppedTotal: Int { dropped.values.reduce(0, +) }

    /// Sends `payload` to `peer`, whose reachable endpoints (from the
    /// registry) are `candidates`.
    public mutating func send(_ payload: [UInt8], to peer: PublicKey, candidates: [Endpoint], time: TunnelTime) -> [Outgoing] {
        guard let slot = prepare(peer, candidates: candidates, time: time) else { return [] }
        let index = freshIndex()
        let actions = states[slot]!.tunnel.send(payload, time: time, freshIndex: index)
        defer { scheduleWake(slot, time: time) }
        return apply(actions, slot: slot, time: time).outgoing
    }

    /// A beacon introduced `peer` at `endpoint`: try it at once (both sides
    /// do, which opens both NATs).
    public mutating func punch(_ peer: PublicKey, at endpoint: Endpoint, time: TunnelTime) -> [Outgoing] {
        guard let slot = prepare(peer, candidates: [], time: time) else { return [] }
        defer { scheduleWake(slot, time: time) }
        if !states[slot]!.candidates.contains(endpoint) { states[slot]!.candidates.insert(endpoint, at: 0) }
        let index = freshIndex()
        let actions = states[slot]!.tunnel.handshakeNow(time: time, freshIndex: index)
        if actions.isEmpty { return probe(slot, time: time) } // a session exists (relayed): try the new endpoint directly
        return apply(actions, slot: slot, time: time).outgoing
    }

    /// An encrypted keepalive sent only directly, to every known endpoint of
    /// a relayed peer: if one gets through, the peer answers directly and
    /// both sides leave the relay.
    private mutating func probe(_ slot: Int, time: TunnelTime) -> [Outgoing] {
        guard let state = states[slot], state.tunnel.isEstablished else { return [] }
        let peer = state.tunnel.peer
        states[slot]!.lastProbeAt = time.now
        let directs = (state.direct.map { [$0] } ?? []) + state.candidates.filter { $0 != state.direct }
        let index = freshIndex()
        let actions = states[slot]!.tunnel.send([], time: time, freshIndex: index)
        var outgoing: [Outgoing] = []
        for case .transmit(let datagram) in actions {
            outgoing += directs.map { Outgoing(datagram: datagram, to: .direct($0), peer: peer) }
        }
        return outgoing
    }

    /// The peer's slot, made if it has none and the table has room.
    private mutating func prepare(_ peer: PublicKey, candidates: [Endpoint], time: TunnelTime) -> Int? {
        guard peer != identity.publicKey else { count("a node cannot tunnel to itself"); return nil }
        let slot: Int
        if let existing = slots[peer] {
            slot = existing
            for candidate in candidates where !states[slot]!.candidates.contains(candidate) { states[slot]!.candidates.append(candidate) }
        } else {
            if slots.count >= limits.maxPeers { forgetIdle(time: time, idle: 0) }
            guard slots.count < limits.maxPeers else { count("too many peers"); return nil }
            let state = PeerState(tunnel: TunnelPeer(identity: identity, peer: peer, preference: preference, timing: timing), candidates: candidates)
            if let free = freeSlots.popLast() {
                slot = free
                states[slot] = state
            } else {
                slot = states.count
                states.append(state)
            }
            slots[peer] = slot
        }
        // The relay clock starts when there is no fresh path, whether or not a
        // session exists (a NAT mapping can expire under an established session).
        if states[slot]!.firstAttemptAt == nil, !hasFreshPath(slot, time: time) { states[slot]!.firstAttemptAt = time.now }
        return slot
    }

    /// One tunnel datagram, straight from the socket or unwrapped from the relay.
    ///
    /// An initiation is answered only when its mac1 is right, its source is
    /// within its budget (and proven by a cookie under load: `HandshakeCookies`),
    /// its timestamp is newer than any answered before, and its key is a
    /// peer already or `admit` says yes; an unknown key costs no state, only
    /// a `Note.vouch`. A peer's endpoint moves only on what a live session
    /// authenticates (transport data, or the response to our own
    /// initiation), never on an initiation.
    public mutating func receive(_ datagram: [UInt8], from source: Route, time: TunnelTime,
                                 admit: (PublicKey) -> Bool = { _ in true }) -> (outgoing: [Outgoing], delivered: [Delivery]) {
        let frame: TunnelFrame
        do { frame = try TunnelFrame.parse(datagram) } catch {
            count("malformed datagram")
            return ([], [])
        }
        let slot: Int
        let actions: [TunnelPeer.Action]
        switch frame {
        case let .initiation(senderIndex, message):
            return (answer(datagram, senderIndex: senderIndex, message: message, from: source, time: time, admit: admit), [])
        case .response(_, let receiverIndex, _), .transport(let receiverIndex, _), .cookieReply(let receiverIndex, _, _):
            guard let owner = indexOwner[receiverIndex], states[owner] != nil else {
                count("datagram for an unknown session")
                return ([], [])
            }
            slot = owner
            actions = states[slot]!.tunnel.receive(frame, time: time)
        }
        defer { scheduleWake(slot, time: time) }
        // Only a live session's data, or the answer to our own handshake
        // (bound to our fresh ephemeral key), proves the route.
        let authenticating: Bool
        switch frame {
        case .transport, .response: authenticating = true
        case .initiation, .cookieReply: authenticating = false
        }
        let authenticated = authenticating && (actions.isEmpty || actions.contains { if case .dropped = $0 { false } else { true } })
        var answerDirectly = false
        if authenticated {
            if case .direct = source, path(slot: slot, time: time) == .relay { answerDirectly = true }
            // The peer proved its key over this route: prefer it (roaming, NAT rebinding, leaving the relay).
            switch source {
            case .direct(let endpoint):
                states[slot]!.direct = endpoint
                states[slot]!.lastDirectAt = time.now
            case .relay:
                states[slot]!.lastRelayedAt = time.now
            }
            states[slot]!.firstAttemptAt = nil
        }
        var result = apply(actions, slot: slot, time: time)
        // A relayed peer just reached us directly: answer at once over that
        // path, so that it too leaves the relay without waiting for a probe.
        if answerDirectly { result.outgoing += probe(slot, time: time) }
        return result
    }

    /// An initiation, checked as `receive` says; the response (or a cookie
    /// reply) goes back where the initiation came from, and nothing about
    /// the peer's route changes.
    private mutating func answer(_ datagram: [UInt8], senderIndex: UInt32, message: [UInt8], from source: Route, time: TunnelTime,
                                 admit: (PublicKey) -> Bool) -> [Outgoing] {
        switch handshakeGuard.check(datagram, senderIndex: senderIndex, from: source, now: time.now) {
        case .proceed: break
        case .cookieReply(let reply):
            count("initiation answered with a cookie (under load)")
            return reply.isEmpty ? [] : [Outgoing(datagram: reply, to: source, peer: identity.publicKey)]
        case .drop(let reason):
            count(reason)
            return []
        }
        let read: (handshake: Handshake, initiator: PublicKey, timestamp: UInt64)
        do { read = try TunnelPeer.readInitiation(message, identity: identity, preference: preference) } catch {
            count("bad handshake initiation")
            return []
        }
        let peer = read.initiator
        guard read.timestamp > floors[peer] ?? 0 else {
            count("replayed handshake initiation")
            return []
        }
        guard slots[peer] != nil || admit(peer) else {
            count("initiation from a key this node does not know")
            notes.append(.vouch(peer))
            return []
        }
        guard let slot = prepare(peer, candidates: [], time: time) else { return [] }
        defer { scheduleWake(slot, time: time) }
        states[slot]!.tunnel.lastInitiationTimestamp = max(states[slot]!.tunnel.lastInitiationTimestamp, floors[peer] ?? 0)
        let index = freshIndex()
        let actions = states[slot]!.tunnel.respond(to: read.handshake, senderIndex: senderIndex, timestamp: read.timestamp, time: time, localIndex: index)
        var outgoing: [Outgoing] = []
        for action in actions {
            switch action {
            case .transmit(let response):
                outgoing.append(Outgoing(datagram: response, to: source, peer: peer))
                floors[peer] = read.timestamp
                notes.append(.answered(peer, read.timestamp))
            case .dropped(let reason): count(Self.category(reason))
            case .deliver, .established: break
            }
        }
        syncIndices(slot)
        return outgoing
    }

    /// Forgets every peer that holds nothing and has been quiet for `idle`
    /// (a full table making room; `tick` forgets the rest as they come due).
    private mutating func forgetIdle(time: TunnelTime, idle: Int64) {
        for slot in Array(slots.values) where states[slot]!.tunnel.isForgettable(now: time.now, idle: idle) { forget(slot) }
    }

    private mutating func forget(_ slot: Int) {
        for index in states[slot]!.indices { indexOwner[index] = nil }
        slots[states[slot]!.tunnel.peer] = nil
        states[slot] = nil
        freeSlots.append(slot)
        wake.remove(slot)
    }

    /// The timers of the tunnels that are due; call about once a second.
    public mutating func tick(time: TunnelTime) -> [Outgoing] {
        var outgoing: [Outgoing] = []
        for slot in wake.takeDue(now: time.now) where states[slot] != nil {
            if states[slot]!.tunnel.isForgettable(now: time.now, idle: limits.forgetAfter) {
                forget(slot)
                continue
            }
            let index = freshIndex()
            let actions = states[slot]!.tunnel.tick(time: time, freshIndex: index)
            outgoing += apply(actions, slot: slot, time: time).outgoing
            if limits.relayAvailable, path(slot: slot, time: time) == .relay,
               states[slot]!.lastProbeAt.map({ time.now - $0 >= limits.probeEvery }) ?? true {
                outgoing += probe(slot, time: time)
            }
            scheduleWake(slot, time: time)
        }
        return outgoing
    }

    /// Due no later than the slot's next timer. A deadline that moved later
    /// (traffic put off a keepalive) keeps its earlier entry: that tick
    /// does nothing and schedules the real one.
    private mutating func scheduleWake(_ slot: Int, time: TunnelTime) {
        guard states[slot] != nil else { return }
        var at = states[slot]!.tunnel.nextDeadline(forgetAfter: limits.forgetAfter) ?? .max
        if limits.relayAvailable, path(slot: slot, time: time) == .relay {
            at = min(at, states[slot]!.lastProbeAt.map { $0 + limits.probeEvery } ?? .min)
        }
        // A peer that was relayed before goes back to the relay by time alone, when its direct path goes stale.
        if limits.relayAvailable, states[slot]!.lastRelayedAt != nil, let direct = states[slot]!.lastDirectAt {
            at = min(at, direct + limits.pathFresh)
        }
        if at != .max { wake.schedule(slot, noLaterThan: at) }
    }

    private func hasFreshPath(_ slot: Int, time: TunnelTime) -> Bool {
        let fresh = { (at: Int64?) in at.map { time.now - $0 < limits.pathFresh } ?? false }
        return fresh(states[slot]!.lastDirectAt) || fresh(states[slot]!.lastRelayedAt)
    }

    /// Where a datagram for `peer` goes now (see the type's comment).
    private func routes(for slot: Int, time: TunnelTime) -> [Route] {
        if let direct = states[slot]!.direct, let at = states[slot]!.lastDirectAt, time.now - at < limits.pathFresh { return [.direct(direct)] }
        let state = states[slot]!
        let directs = (state.direct.map { [$0] } ?? []) + state.candidates.filter { $0 != state.direct }
        // Once the relay has carried this peer, it stays the route until a
        // direct path proves itself (probes keep trying that).
        let relayed = state.lastRelayedAt != nil
        let waitedLongEnough = state.firstAttemptAt.map { time.now - $0 >= limits.relayAfter } ?? false
        guard limits.relayAvailable, relayed || waitedLongEnough else { return directs.map { .direct($0) } }
        // Relayed: `tick` probes the direct endpoints with keepalives of their own.
        return [.relay]
    }

    private mutating func apply(_ actions: [TunnelPeer.Action], slot: Int, time: TunnelTime) -> (outgoing: [Outgoing], delivered: [Delivery]) {
        var outgoing: [Outgoing] = []
        var delivered: [Delivery] = []
        guard let peer = states[slot]?.tunnel.peer else { return ([], []) }
        for action in actions {
            switch action {
            case .transmit(let datagram):
                let targets = routes(for: slot, time: time)
                if targets.isEmpty { count("no known endpoint for the peer") }
                outgoing += targets.map { Outgoing(datagram: datagram, to: $0, peer: peer) }
            case .deliver(let payload):
                delivered.append(Delivery(from: peer, payload: payload))
            case .established:
                break
            case .dropped(let reason):
                count(Self.category(reason))
            }
        }
        syncIndices(slot)
        return (outgoing, delivered)
    }

    /// Keeps the index table in step with the sessions the tunnel holds
    /// (checked without allocating: most datagrams change none).
    private mutating func syncIndices(_ slot: Int) {
        guard states[slot] != nil, !states[slot]!.tunnel.holdsExactly(states[slot]!.indices) else { return }
        let live = states[slot]!.tunnel.localIndices
        for index in states[slot]!.indices where !live.contains(index) { indexOwner[index] = nil }
        for index in live { indexOwner[index] = slot }
        states[slot]!.indices = live
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

    /// Counts a drop decided outside the router (beacon messages at the node).
    public mutating func countExternal(_ reason: String) { count(reason) }

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
