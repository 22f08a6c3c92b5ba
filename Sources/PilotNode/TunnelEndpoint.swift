#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
public import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotCrypto
public import PilotWire
internal import PilotTransport

/// The node's one UDP socket and the tunnels behind it: a thin NIO shell
/// around `TunnelRouter`. This file is the driver (the socket, the timers,
/// the beacon, datagram ports and their trust gate); the reliable streams
/// are in `TunnelEndpoint+Streams.swift` and the built-in services (echo,
/// discard, ping) in `TunnelEndpoint+Services.swift`. All state is
/// confined to one event loop, which is why the class needs no locks.
public final class TunnelEndpoint: @unchecked Sendable {
    public let identity: SigningKey
    /// The loop all of the endpoint's state lives on; the stream calls
    /// marked "on the loop" run there.
    public let loop: any EventLoop
    let logger: Logger
    var router: TunnelRouter
    private var channel: (any Channel)?
    /// Datagrams written since the last flush wait for one flush at the end
    /// of this turn of the loop: NIO sends them with one sendmmsg.
    private var flushScheduled = false
    static let vectorReads = 16
    /// The drop counters as last logged, and seconds since.
    private var reportedDrops: [String: Int] = [:]
    private var dropTicks = 0
    private var addresses: [Endpoint: SocketAddress] = [:]
    /// When to talk to the beacon and what its answers ask for: decided in
    /// PilotWire's pure `BeaconClient`, carried out here.
    private var beaconClient: BeaconClient
    private var beaconAddress: SocketAddress?
    /// This node's endpoint as the beacon sees it (its public NAT mapping).
    public var observedEndpoint: Endpoint? { beaconClient.observed }
    /// Called on the loop when the beacon reports a new public endpoint.
    private var onObservedEndpoint: (@Sendable (Endpoint) -> Void)?
    /// Services on virtual ports: called with the sender's key and message.
    private var services: [UInt16: (PublicKey, OverlayMessage) -> Void] = [:]
    /// Who may reach ports other than 7 (echo) and 444 (trust handshake).
    var isTrusted: (PublicKey) -> Bool = { _ in false }
    /// Messages refused because the sender is not trusted, by port.
    public private(set) var refusedUntrusted = 0

    /// Whose handshakes this endpoint answers (the node sets `.known`; a
    /// bare endpoint, as benchmarks use it, answers everyone).
    public enum Admission: Sendable {
        case open
        /// Trusted (pinned) keys and keys the voucher (a registry lookup)
        /// says are registered; nil: trusted keys only.
        case known(voucher: (@Sendable (PublicKey) async -> Bool)?)
    }
    var admission = Admission.open
    /// Keys the registry vouched for, until when (monotonic microseconds).
    var vouched: [PublicKey: Int64] = [:]
    /// Keys the registry did not list, not asked about again until then.
    var unvouchedUntil: [PublicKey: Int64] = [:]
    /// Lookups in flight, with the initiation that asked (answered as soon
    /// as the registry vouches, instead of at the initiator's next retry).
    var vouching: [PublicKey: (datagram: [UInt8], route: Route)] = [:]
    var lookupBudget = TokenBucket(burst: TunnelEndpoint.lookupBurst, perSecond: TunnelEndpoint.lookupsPerSecond)
    var floorsFile: HandshakeFloors?
    public private(set) var boundAddress: Endpoint?

    // Stream state (stored here: extensions cannot hold it); driven by `TunnelEndpoint+Streams.swift`.
    var streams = StreamMux()
    var streamPoll: Scheduled<Void>?
    var streamPollAt: Int64 = .max
    /// A poll queued for the end of this turn of the loop (after sends).
    var streamPollQueued = false
    /// Per connection: the messages a local client waits for.
    var streamWaiters: [StreamMux.ConnectionID: (Result<[UInt8], any Error>) -> Void] = [:]
    var streamServices: [UInt16: @Sendable (StreamServiceEvent) -> Void] = [:]
    var serviceConnections: [StreamMux.ConnectionID: UInt16] = [:]
    /// Bulk senders waiting for window space, run after stream traffic arrives.
    var streamSenders: [StreamMux.ConnectionID: () -> Void] = [:]
    /// Why a bulk sender's (`sendAll`) connection was reset by the peer.
    var resetReasons: [StreamMux.ConnectionID: StreamReset] = [:]

    // Built-in services' state; see `TunnelEndpoint+Services.swift`.
    var pings: [UInt64: (sentAt: Int64, promise: EventLoopPromise<Int64>)] = [:]
    var discard = DiscardService()

    public init(identity: SigningKey, loop: any EventLoop, logger: Logger, preference: AEADAlgorithm = AEADAlgorithm.localPreference(),
                beacon: Endpoint? = nil, maxPeers: Int = TunnelRouter.Limits().maxPeers) {
        self.identity = identity
        self.loop = loop
        self.logger = logger
        var limits = TunnelRouter.Limits()
        limits.relayAvailable = beacon != nil
        limits.maxPeers = maxPeers
        router = TunnelRouter(identity: identity, preference: preference, limits: limits)
        // A hub holds a stream per node: as many as it holds peers.
        streams.maxConnections = max(1024, maxPeers)
        self.beaconClient = BeaconClient(identity: identity, beacon: beacon)
        streams.listen(on: OverlayMessage.echoPort)
        streams.listen(on: OverlayMessage.discardPort)
    }

    /// Sets what to do when the beacon reports this node's public endpoint;
    /// called at once if the beacon already did (its first answer can come
    /// before the caller is ready).
    public func whenObservedEndpointChanges(_ handler: @escaping @Sendable (Endpoint) -> Void) {
        loop.execute {
            self.onObservedEndpoint = handler
            if let observed = self.observedEndpoint { handler(observed) }
        }
    }

    /// Before `start`: keeps the newest initiation timestamp per peer in
    /// `path` across restarts (see `HandshakeFloors`).
    public func keepHandshakeFloors(at path: String) async throws {
        let file = try HandshakeFloors(path: path)
        try await loop.submit {
            self.floorsFile = file
            self.router = TunnelRouter(identity: self.identity, preference: self.router.preference, timing: self.router.timing,
                                       limits: self.router.limits, floors: file.floors)
        }.get()
    }

    /// Answers handshakes only from trusted keys and keys `voucher` (a
    /// registry lookup) vouches for; the future completes once in place.
    @discardableResult
    public func requireKnownPeers(voucher: (@Sendable (PublicKey) async -> Bool)?) -> EventLoopFuture<Void> {
        loop.submit { self.admission = .known(voucher: voucher) }
    }

    /// Binds the socket (port 0 picks one) and starts the tunnel timers,
    /// and the beacon hellos every 20 s when a beacon is configured.
    public func start(listen: Endpoint) async throws {
        if let beacon = beaconClient.beacon {
            // Resolved once here; a beacon named by DNS is looked up at start.
            beaconAddress = try SocketAddress.makeAddressResolvingHost(beacon.host, port: Int(beacon.port))
            if let ip = beaconAddress?.ipAddress { self.beaconClient.beacon = Endpoint(host: ip, port: beacon.port) }
        }
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Room for a stream's window of datagrams arriving at once.
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            // recvmmsg: up to `vectorReads` datagrams a system call, each in
            // its own 2 kB slice of one buffer (a relayed datagram is a
            // tunnel datagram plus the beacon's header).
            .channelOption(.datagramVectorReadMessageCount, value: Self.vectorReads)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.vectorReads * 2048))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramReader { bytes, source, _ in self.received(bytes, from: source) }) }
            }
            .bind(host: listen.host, port: Int(listen.port)).get()
        try await loop.submit {
            self.channel = channel
            self.boundAddress = channel.localAddress.flatMap { address in address.port.map { Endpoint(host: address.ipAddress ?? listen.host, port: UInt16($0)) } }
            self.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                self.transmit(self.router.tick(time: TunnelTime.current()))
                self.reportDrops()
            }
            if self.beaconClient.beacon != nil { self.sayHello() }
        }.get()
    }

    public func stop() async {
        try? await channel?.close()
    }

    /// Drops since the last report, logged at most every `dropReportTicks`
    /// seconds (a flood of garbage is one line, not one per datagram).
    private func reportDrops() {
        dropTicks += 1
        guard dropTicks >= Self.dropReportTicks else { return }
        dropTicks = 0
        let now = router.dropped
        let fresh = now.compactMap { reason, count -> (String, Int)? in
            let new = count - (reportedDrops[reason] ?? 0)
            return new > 0 ? (reason, new) : nil
        }.sorted { $0.1 > $1.1 }
        reportedDrops = now
        guard !fresh.isEmpty else { return }
        logger.warning("tunnel dropped datagrams", metadata: [
            "seconds": "\(Self.dropReportTicks)", "dropped": "\(fresh.map(\.1).reduce(0, +))",
            "reasons": "\(fresh.map { "\($0.0)=\($0.1)" }.joined(separator: ", "))",
        ])
    }

    static let dropReportTicks = 10

    public var droppedCounts: [String: Int] {
        get async { (try? await loop.submit { self.router.dropped }.get()) ?? [:] }
    }

    /// Stream connections open now, and those refused as they opened, by code.
    public var streamTable: (connections: Int, refused: [String: Int]) {
        get async { (try? await loop.submit { (self.streams.connectionCount, self.streams.refused) }.get()) ?? (0, [:]) }
    }

    /// Peers in the tunnel table now, and whether handshakes need cookies.
    public var peerTable: (peers: Int, underLoad: Bool) {
        get async { (try? await loop.submit { (self.router.peerCount, self.router.isUnderLoad) }.get()) ?? (0, false) }
    }

    /// Sends a datagram from a local port to a port of `peer`. Data beyond
    /// what one 1,280-byte tunnel datagram carries is refused (use a stream).
    @discardableResult
    public func send(_ message: OverlayMessage, to peer: PublicKey, candidates: [Endpoint]) -> Bool {
        guard message.data.count <= OverlayMessage.maxDatagramData else {
            logger.warning("datagram too large for one tunnel datagram; use a stream", metadata: ["bytes": "\(message.data.count)"])
            return false
        }
        loop.execute { self.sendNow(message.encoded, to: peer, candidates: candidates) }
        return true
    }

    /// On the loop: sends, and asks the beacon to introduce us while there
    /// is no direct path (as often as `BeaconClient` allows).
    func sendNow(_ payload: [UInt8], to peer: PublicKey, candidates: [Endpoint]) {
        let time = TunnelTime.current()
        transmit(router.send(payload, to: peer, candidates: candidates, time: time))
        if let connect = beaconClient.connect(to: peer, route: router.path(to: peer, time: time), time: time) { sendToBeacon(connect) }
    }

    /// The registry's newest ticket for this node, which the beacon asks
    /// for in every hello: sent in a hello at once, before the old one expires.
    public func renewBeaconTicket(_ ticket: BeaconTicket) {
        loop.execute {
            let time = TunnelTime.current()
            guard self.beaconClient.renew(ticket, time: time) else {
                return self.logger.warning("ignored a beacon ticket for another key", metadata: ["key": "\(ticket.node.fingerprint)"])
            }
            if let hello = self.beaconClient.hello(time: time) { self.sendToBeacon(hello) }
        }
    }

    /// Sends the hello that is due and wakes again when the next one is.
    private func sayHello() {
        let time = TunnelTime.current()
        if let hello = beaconClient.hello(time: time) { sendToBeacon(hello) }
        let wait = beaconClient.nextHelloAt > time.now ? beaconClient.nextHelloAt - time.now : 0
        loop.assumeIsolated().scheduleTask(in: .microseconds(wait)) { self.sayHello() }
    }

    private func sendToBeacon(_ message: BeaconMessage) {
        guard let channel, let beaconAddress else { return }
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: beaconAddress, data: channel.allocator.buffer(bytes: message.encoded)), promise: nil)
    }

    /// Registers the handler of a virtual port; it runs on the tunnel loop.
    /// The future completes once the handler is in place (see `setTrustGate`).
    @discardableResult
    public func listen(port: UInt16, _ handler: @escaping @Sendable (PublicKey, OverlayMessage) -> Void) -> EventLoopFuture<Void> {
        loop.submit { self.services[port] = handler }
    }

    /// Sets the trust gate for every port but 7 and 444 (runs on the tunnel loop).
    /// The future completes once the gate is in place: a datagram that the
    /// loop reads in the same wakeup as the change would otherwise still
    /// meet the old gate (its I/O runs before its queued tasks).
    @discardableResult
    public func setTrustGate(_ gate: @escaping @Sendable (PublicKey) -> Bool) -> EventLoopFuture<Void> {
        loop.submit { self.isTrusted = gate }
    }

    public func path(to peer: PublicKey) async -> Route? {
        try? await loop.submit { self.router.path(to: peer, time: TunnelTime.current()) }.get()
    }

    // MARK: On the loop

    fileprivate func received(_ bytes: [UInt8], from source: SocketAddress) {
        guard let ip = source.ipAddress, let port = source.port else { return }
        let endpoint = Endpoint(host: ip, port: UInt16(port))
        let time = TunnelTime.current()
        guard BeaconMessage.isBeaconDatagram(bytes) else { return receiveTunnel(bytes, from: .direct(endpoint), time: time) }
        switch beaconClient.receive(bytes, from: endpoint) {
        case .observed(let observed)?:
            logger.info("beacon sees this node at", metadata: ["endpoint": "\(observed)"])
            onObservedEndpoint?(observed)
        case let .punch(peer, at)?:
            transmit(router.punch(peer, at: at, time: time))
        case .relayed(let inner)?:
            receiveTunnel(inner, from: .relay, time: time)
        case .refused(let reason)?:
            logger.debug("beacon refused", metadata: ["reason": "\(reason)"])
        case .dropped(let reason)?:
            router.countExternal(reason)
        case nil:
            break
        }
    }

    /// A tunnel datagram, straight from the socket or out of the relay.
    private func receiveTunnel(_ datagram: [UInt8], from route: Route, time: TunnelTime) {
        let (outgoing, delivered) = router.receive(datagram, from: route, time: time) { self.admits($0, now: time.now) }
        for note in router.takeNotes() {
            switch note {
            case .vouch(let key): vouch(for: key, asked: (datagram, route), now: time.now)
            case let .answered(key, timestamp): floorsFile?.answered(key, timestamp)
            }
        }
        transmit(outgoing)
        for delivery in delivered { dispatch(delivery) }
    }

    // MARK: Admission (on the loop)

    static let lookupBurst = 500.0
    static let lookupsPerSecond = 100.0
    static let vouchedFor: Int64 = 600_000_000
    static let unvouchedFor: Int64 = 2_000_000
    static let maxRemembered = 200_000

    private func admits(_ key: PublicKey, now: Int64) -> Bool {
        guard case .known = admission else { return true }
        return isTrusted(key) || vouched[key].map { $0 > now } ?? false
    }

    /// At most one registry lookup per unknown key at a time, within a
    /// budget (`lookupBurst`, then `lookupsPerSecond`), and none for a key
    /// the registry did not list in the last `unvouchedFor`: a flood of
    /// unknown keys costs the registry a bounded rate and this node bounded
    /// memory. The key's next initiation (a second later) is then answered.
    private func vouch(for key: PublicKey, asked: (datagram: [UInt8], route: Route), now: Int64) {
        guard case .known(let voucher?) = admission, vouching[key] == nil, vouching.count < 256,
              unvouchedUntil[key].map({ $0 <= now }) ?? true else { return }
        guard lookupBudget.take(now: now) else {
            router.countExternal("unknown key not looked up (lookup budget spent)")
            return
        }
        vouching[key] = asked
        loop.makeFutureWithTask { await voucher(key) }.assumeIsolated().whenSuccess { listed in
            let asked = self.vouching.removeValue(forKey: key)
            let time = TunnelTime.current()
            let at = time.now
            if listed {
                if self.vouched.count >= Self.maxRemembered { self.vouched = self.vouched.filter { $0.value > at } }
                self.vouched[key] = at + Self.vouchedFor
                self.unvouchedUntil[key] = nil
                if let asked { self.receiveTunnel(asked.datagram, from: asked.route, time: time) }
            } else {
                if self.unvouchedUntil.count >= Self.maxRemembered { self.unvouchedUntil = self.unvouchedUntil.filter { $0.value > at } }
                self.unvouchedUntil[key] = at + Self.unvouchedFor
            }
        }
    }

    /// One overlay message out of a tunnel: stream segments go to the
    /// streams, the echo and ping ports to the built-in services (open to
    /// anyone with a tunnel), every other port past the trust gate.
    private func dispatch(_ delivery: TunnelRouter.Delivery) {
        let messages: [OverlayMessage]
        do {
            messages = try OverlayMessage.parseAll(delivery.payload)
        } catch {
            logger.debug("unreadable overlay message", metadata: ["from": "\(delivery.from.fingerprint)", "error": "\(error)"])
            return
        }
        // A bundle's stream segments are taken in together and answered
        // once: one ack, one round of the bulk senders, one poll.
        var segments: [OverlayMessage] = []
        for message in messages {
            if message.kind == .stream { segments.append(message) } else { dispatch(message, from: delivery.from) }
        }
        if !segments.isEmpty { receiveStreams(segments, from: delivery.from) }
    }

    private func dispatch(_ message: OverlayMessage, from peer: PublicKey) {
        if answerBuiltIn(message, from: peer) { return }
        if message.destinationPort != OverlayMessage.trustPort, !isTrusted(peer) {
            refusedUntrusted += 1
            logger.debug("refused: peer not trusted", metadata: ["port": "\(message.destinationPort)", "peer": "\(peer.fingerprint)"])
            return
        }
        if let service = services[message.destinationPort] {
            service(peer, message)
        } else {
            logger.debug("message for a closed port", metadata: ["port": "\(message.destinationPort)"])
        }
    }

    func transmit(_ outgoing: [TunnelRouter.Outgoing]) {
        guard let channel else { return }
        for out in outgoing {
            let address: SocketAddress
            var datagram = out.datagram
            switch out.to {
            case .relay:
                guard let beaconAddress else { continue }
                address = beaconAddress
                datagram = BeaconMessage.relay(target: out.peer, datagram: datagram).encoded
            case .direct(let endpoint):
                if let cached = addresses[endpoint] {
                    address = cached
                } else {
                    guard let resolved = try? SocketAddress(ipAddress: endpoint.host, port: Int(endpoint.port)) else { continue }
                    if addresses.count > 10_000 { addresses.removeAll() }
                    addresses[endpoint] = resolved
                    address = resolved
                }
            }
            channel.write(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: datagram)), promise: nil)
        }
        guard !outgoing.isEmpty, !flushScheduled else { return }
        // Tasks run after the loop has handled every socket event of this
        // turn: what a batch of reads (or a window of sends) produced goes out together.
        flushScheduled = true
        loop.execute {
            self.flushScheduled = false
            self.channel?.flush()
        }
    }
}

public enum TunnelError: Error, CustomStringConvertible {
    case timeout(String, Int)
    /// The peer (or the stream's own timeouts) reset the connection.
    case reset(StreamReset)
    public var description: String {
        switch self {
        case let .timeout(peer, seconds): "no reply from \(peer) within \(seconds) s"
        case .reset(let reason): "the connection was reset: \(reason)"
        }
    }
}
