public import PilotCore
public import PilotCrypto

/// The node's side of the beacon, as a pure policy with the time passed in:
/// when to say hello, when to ask for an introduction to a peer, timestamps
/// the beacon accepts, and what a datagram from the beacon asks of the node.
/// Hellos carry the registry's newest `BeaconTicket` for this node; none go
/// before the first ticket (the beacon would refuse them), and a renewed
/// ticket goes out at once, so the beacon never holds an expiring one
/// while a fresh one exists.
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
    /// The registry's newest ticket for this node (nil: none yet).
    public private(set) var ticket: BeaconTicket?
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
    /// every `helloEvery`. The caller wakes again at `nextHelloAt`. Without
    /// a ticket nothing is due (the caller wakes every `helloEvery` to look
    /// again); `renew` makes a hello due at once.
    public mutating func hello(time: TunnelTime) -> BeaconMessage? {
        guard beacon != nil, time.now >= nextHelloAt else { return nil }
        nextHelloAt = time.now + timing.helloEvery
        guard let ticket else { return nil }
        return .signedHello(identity, timestamp: timestamp(time), ticket: ticket)
    }

    /// A ticket from the registry. One for another key is ignored (false);
    /// a new one makes the next hello due at once.
    @discardableResult
    public mutating func renew(_ fresh: BeaconTicket, time: TunnelTime) -> Bool {
        guard fresh.node == identity.publicKey else { return false }
        guard fresh != ticket else { return true }
        ticket = fresh
        nextHelloAt = min(nextHelloAt, time.now)
        return true
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
