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
/// around `TunnelRouter`, plus the services on well-known virtual ports
/// (7: echo). All state is confined to one event loop.
public final class TunnelEndpoint: @unchecked Sendable {
    public let identity: SigningKey
    let loop: any EventLoop
    let logger: Logger
    private var router: TunnelRouter
    private var channel: (any Channel)?
    private var addresses: [Endpoint: SocketAddress] = [:]
    private var beacon: Endpoint?
    private var beaconAddress: SocketAddress?
    private var lastConnectRequest: [PublicKey: Int64] = [:]
    /// This node's endpoint as the beacon sees it (its public NAT mapping).
    public private(set) var observedEndpoint: Endpoint?
    /// Called on the loop when the beacon reports a new public endpoint.
    private var onObservedEndpoint: (@Sendable (Endpoint) -> Void)?

    /// Sets what to do when the beacon reports this node's public endpoint;
    /// called at once if the beacon already did (its first answer can come
    /// before the caller is ready).
    public func whenObservedEndpointChanges(_ handler: @escaping @Sendable (Endpoint) -> Void) {
        loop.execute {
            self.onObservedEndpoint = handler
            if let observed = self.observedEndpoint { handler(observed) }
        }
    }
    private var pings: [UInt64: (sentAt: Int64, promise: EventLoopPromise<Int64>)] = [:]
    // MARK: Streams (on the loop)

    private var streams = StreamMux()
    private var streamPoll: Scheduled<Void>?
    private var streamPollAt: Int64 = .max
    /// Per connection: the messages a local client waits for.
    private var streamWaiters: [StreamMux.ConnectionID: (Result<[UInt8], any Error>) -> Void] = [:]
    private var discardConnections: Set<StreamMux.ConnectionID> = []
    private var streamServices: [UInt16: @Sendable (StreamServiceEvent) -> Void] = [:]
    private var serviceConnections: [StreamMux.ConnectionID: UInt16] = [:]

    /// What a stream service on a virtual port hears (on the tunnel loop).
    public enum StreamServiceEvent: Sendable {
        case accepted(StreamMux.ConnectionID)
        case message(StreamMux.ConnectionID, [UInt8])
        case closed(StreamMux.ConnectionID, StreamReset)
    }

    /// Accepts reliable stream connections on `port` (only from trusted
    /// peers, unless the port is 7 or 444); the handler runs on the tunnel loop.
    public func acceptStreams(on port: UInt16, _ handler: @escaping @Sendable (StreamServiceEvent) -> Void) {
        loop.execute {
            self.streams.listen(on: port)
            self.streamServices[port] = handler
        }
    }

    /// Sends a message on a stream connection (from the tunnel loop, e.g. a service handler).
    /// False when the connection is gone or its send buffer is full.
    @discardableResult
    public func sendOnStream(_ message: [UInt8], on connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        guard (try? streams.send(message, on: connection)) != nil else { return false }
        pollStreams()
        return true
    }

    /// Bulk senders waiting for window space, run after stream traffic arrives.
    private var streamSenders: [StreamMux.ConnectionID: () -> Void] = [:]
    /// Why a bulk sender's connection was reset by the peer.
    private var resetReasons: [StreamMux.ConnectionID: StreamReset] = [:]

    /// Messages sent on a connection and not yet on the wire (on the loop).
    public func queuedOnStream(_ connection: StreamMux.ConnectionID) -> Int {
        loop.preconditionInEventLoop()
        return streams.queuedMessages(on: connection)
    }

    /// Whether everything sent on a connection has reached the peer (on the loop).
    public func isStreamIdle(_ connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        return streams.isIdle(connection)
    }

    /// Transport counters of a connection (on the loop).
    public func streamStatistics(_ connection: StreamMux.ConnectionID) -> ReliableChannel.Statistics? {
        loop.preconditionInEventLoop()
        return streams.statistics(connection)
    }

    public func isStreamOpen(_ connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        return streams.isOpen(connection)
    }

    /// Runs `handler` (on the loop) whenever stream traffic arrives, which is
    /// when acknowledgements free send space; nil stops it.
    public func whenStreamWritable(_ connection: StreamMux.ConnectionID, _ handler: (() -> Void)?) {
        loop.preconditionInEventLoop()
        streamSenders[connection] = handler
    }

    /// Closes a connection, telling the peer (on the loop).
    public func resetStream(_ connection: StreamMux.ConnectionID, reason: String) {
        loop.preconditionInEventLoop()
        streamSenders[connection] = nil
        streamWaiters[connection] = nil
        sendStream(streams.reset(connection, reason: reason))
    }

    /// Opens a stream connection to `port` of `peer` (opening the tunnel
    /// first). The handler runs on the loop with each message, then once
    /// with the failure that closed the connection.
    public func connectStream(to peer: PublicKey, candidates: [Endpoint], port: UInt16,
                              handler: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) async throws -> StreamMux.ConnectionID {
        var opened = false
        for _ in 0..<3 where !opened { opened = (try? await ping(peer, candidates: candidates)) != nil }
        guard opened else { throw TunnelError.timeout(peer.fingerprint, 9) }
        return try await loop.submit { () throws -> StreamMux.ConnectionID in
            let connection = try self.streams.open(to: peer, port: port, now: TunnelTime.current().now)
            self.streamWaiters[connection] = { result in
                if case .failure = result { self.streamWaiters[connection] = nil }
                handler(result)
            }
            return connection
        }.get()
    }

    private func sendStream(_ outgoing: [StreamMux.Outgoing]) {
        let time = TunnelTime.current()
        for out in outgoing { transmit(router.send(out.payload, to: out.peer, candidates: [], time: time)) }
        scheduleStreamPoll()
    }

    private func handle(_ events: [StreamMux.Event]) {
        for event in events {
            switch event {
            case let .accepted(connection, port):
                if port == OverlayMessage.discardPort { discardConnections.insert(connection) }
                if let service = streamServices[port] {
                    serviceConnections[connection] = port
                    service(.accepted(connection))
                }
            case let .message(connection, bytes):
                if let waiter = streamWaiters[connection] {
                    waiter(.success(bytes))
                } else if discardConnections.contains(connection) {
                    discarded += bytes.count
                } else if let port = serviceConnections[connection], let service = streamServices[port] {
                    service(.message(connection, bytes))
                } else {
                    // The stream echo service on port 7 (the only stream service yet).
                    // It never drops an echo: past its send buffer it resets instead.
                    do { try streams.send(bytes, on: connection) } catch {
                        sendStream(streams.reset(connection, reason: "echo backlog full"))
                    }
                }
            case let .reset(connection, reason):
                discardConnections.remove(connection)
                if let port = serviceConnections.removeValue(forKey: connection) { streamServices[port]?(.closed(connection, reason)) }
                streamWaiters.removeValue(forKey: connection)?(.failure(TunnelError.reset(reason)))
                if let sender = streamSenders.removeValue(forKey: connection) {
                    // A bulk sender learns why at once, not at the next ack.
                    resetReasons[connection] = reason
                    sender()
                    resetReasons[connection] = nil
                }
            }
        }
        pollStreams()
    }

    /// Polls the connections at their next deadline (acks, retransmissions).
    /// Sends what the streams have due and acts on what their poll decided:
    /// resets of idle or unanswered connections reach their owners, on a
    /// later turn of the loop (callers may be in the middle of sending).
    private func pollStreams() {
        let (outgoing, events) = streams.poll(now: TunnelTime.current().now)
        sendStream(outgoing)
        if !events.isEmpty { loop.execute { self.handle(events) } }
    }

    private func scheduleStreamPoll() {
        guard let next = streams.nextDeadline else { return }
        guard next < streamPollAt else { return }
        streamPoll?.cancel()
        streamPollAt = next
        let delay = max(0, next - TunnelTime.current().now)
        streamPoll = loop.assumeIsolated().scheduleTask(in: .microseconds(delay)) {
            self.streamPollAt = .max
            self.pollStreams()
            self.scheduleStreamPoll()
        }
    }

    /// Sends `count` messages over one reliable stream to `peer`'s echo port
    /// and checks every echo comes back, complete and in order. Returns the
    /// elapsed microseconds.
    public func streamEcho(_ peer: PublicKey, candidates: [Endpoint], count: Int, size: Int = 64, timeout: TimeAmount = .seconds(120)) async throws -> Int64 {
        // Open the tunnel first with a datagram ping (a few tries): a stream's
        // first window would otherwise wait in the handshake queue.
        var opened = false
        for _ in 0..<3 where !opened { opened = (try? await ping(peer, candidates: candidates)) != nil }
        guard opened else { throw TunnelError.timeout(peer.fingerprint, 9) }
        return try await loop.flatSubmit { () -> EventLoopFuture<Int64> in
            let promise = self.loop.makePromise(of: Int64.self)
            let started = TunnelTime.current().now
            let connection: StreamMux.ConnectionID
            do { connection = try self.streams.open(to: peer, port: OverlayMessage.echoPort, now: started) } catch {
                promise.fail(error)
                return promise.futureResult
            }
            func message(_ index: Int) -> [UInt8] {
                var bytes = Array("echo \(index) ".utf8)
                while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: index &+ bytes.count)) }
                return bytes
            }
            var sent = 0, received = 0
            func pump() {
                // At most 1,024 echoes outstanding: the echo side's send buffer is bounded too.
                while sent < count, sent - received < 1024, self.streams.canSend(on: connection) {
                    try? self.streams.send(message(sent), on: connection)
                    sent += 1
                }
                self.pollStreams()
            }
            self.streamWaiters[connection] = { result in
                switch result {
                case .success(let bytes):
                    guard bytes == message(received) else {
                        self.streamWaiters[connection] = nil
                        self.sendStream(self.streams.reset(connection, reason: "out of order"))
                        promise.fail(TunnelError.reset(StreamReset(.closed, "echo \(received) came back wrong or out of order")))
                        return
                    }
                    received += 1
                    if received == count {
                        if let stats = self.streams.statistics(connection) {
                            self.logger.info("stream echo done", metadata: [
                                "segments": "\(stats.segmentsSent)", "retransmissions": "\(stats.retransmissions)",
                                "timeouts": "\(stats.timeouts)", "fast": "\(stats.fastRetransmissions)", "duplicates": "\(stats.duplicatesReceived)",
                            ])
                        }
                        self.streamWaiters[connection] = nil
                        self.sendStream(self.streams.reset(connection, reason: "done"))
                        promise.succeed(TunnelTime.current().now - started)
                    } else {
                        pump()
                    }
                case .failure(let error):
                    promise.fail(error)
                }
            }
            pump()
            self.loop.assumeIsolated().scheduleTask(in: timeout) {
                if self.streamWaiters.removeValue(forKey: connection) != nil {
                    self.sendStream(self.streams.reset(connection, reason: "timeout"))
                    promise.fail(TunnelError.timeout("\(received) of \(count) echoes from \(peer.fingerprint)", Int(timeout.nanoseconds / 1_000_000_000)))
                }
            }
            return promise.futureResult
        }.get()
    }

    /// Sends `count` messages of `size` bytes over one stream to `port` of
    /// `peer` (by default the discard port, 9) and returns once all are
    /// acknowledged: the elapsed microseconds. For benchmarks and tests.
    public func streamSend(_ peer: PublicKey, candidates: [Endpoint], port: UInt16 = OverlayMessage.discardPort,
                           count: Int, size: Int) async throws -> Int64 {
        var opened = false
        for _ in 0..<3 where !opened { opened = (try? await ping(peer, candidates: candidates)) != nil }
        guard opened else { throw TunnelError.timeout(peer.fingerprint, 9) }
        return try await loop.flatSubmit { () -> EventLoopFuture<Int64> in
            let promise = self.loop.makePromise(of: Int64.self)
            let started = TunnelTime.current().now
            let connection: StreamMux.ConnectionID
            do { connection = try self.streams.open(to: peer, port: port, now: started) } catch {
                promise.fail(error)
                return promise.futureResult
            }
            let payload = [UInt8](repeating: 0x5A, count: size)
            var sent = 0
            // Driven by acks (after each incoming stream message), never a busy loop:
            // a task that re-queues itself would starve the socket reads.
            func pump() {
                guard self.streams.isOpen(connection) else {
                    self.streamSenders[connection] = nil
                    let why = self.resetReasons.removeValue(forKey: connection)
                    promise.fail(TunnelError.reset(StreamReset(why?.code ?? .closed,
                        "the connection to port \(port) closed after \(sent) of \(count) messages" + (why.map { " (\($0.reason))" } ?? ""))))
                    return
                }
                while sent < count, self.streams.canSend(on: connection) {
                    try? self.streams.send(payload, on: connection)
                    sent += 1
                }
                self.pollStreams()
                if sent == count, self.streams.isIdle(connection) {
                    self.streamSenders[connection] = nil
                    promise.succeed(TunnelTime.current().now - started)
                    self.sendStream(self.streams.reset(connection, reason: "done"))
                }
            }
            self.streamSenders[connection] = pump
            pump()
            return promise.futureResult
        }.get()
    }

    /// The local port pings are sent from; echoes come back to it.
    static let pingClientPort: UInt16 = 0xFF07
    /// Services on virtual ports: called with the sender's key and message.
    private var services: [UInt16: (PublicKey, OverlayMessage) -> Void] = [:]
    /// Who may reach ports other than 7 (echo) and 444 (trust handshake).
    private var isTrusted: (PublicKey) -> Bool = { _ in false }
    /// Messages refused because the sender is not trusted, by port.
    public private(set) var refusedUntrusted = 0
    public private(set) var boundAddress: Endpoint?

    public init(identity: SigningKey, loop: any EventLoop, logger: Logger, preference: AEADAlgorithm = AEADAlgorithm.localPreference(),
                beacon: Endpoint? = nil) {
        self.identity = identity
        self.loop = loop
        self.logger = logger
        var limits = TunnelRouter.Limits()
        limits.relayAvailable = beacon != nil
        router = TunnelRouter(identity: identity, preference: preference, limits: limits)
        self.beacon = beacon
        streams.listen(on: OverlayMessage.echoPort)
        streams.listen(on: OverlayMessage.discardPort)
    }

    /// Bytes the discard service (port 9) has swallowed: for benchmarks.
    public var discardedBytes: Int {
        get async { (try? await loop.submit { self.discarded }.get()) ?? 0 }
    }
    private var discarded = 0

    /// Binds the socket (port 0 picks one) and starts the tunnel timers,
    /// and the beacon hellos every 20 s when a beacon is configured.
    public func start(listen: Endpoint) async throws {
        if let beacon {
            // Resolved once here; a beacon named by DNS is looked up at start.
            beaconAddress = try SocketAddress.makeAddressResolvingHost(beacon.host, port: Int(beacon.port))
            if let ip = beaconAddress?.ipAddress { self.beacon = Endpoint(host: ip, port: beacon.port) }
        }
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Room for a stream's window of datagrams arriving at once.
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramReader { bytes, source, _ in self.received(bytes, from: source) }) }
            }
            .bind(host: listen.host, port: Int(listen.port)).get()
        try await loop.submit {
            self.channel = channel
            self.boundAddress = channel.localAddress.flatMap { address in address.port.map { Endpoint(host: address.ipAddress ?? listen.host, port: UInt16($0)) } }
            self.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in self.transmit(self.router.tick(time: TunnelTime.current())) }
            if self.beacon != nil {
                self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(20)) { _ in self.sayHello() }
            }
        }.get()
    }

    public func stop() async {
        try? await channel?.close()
    }

    public var droppedCounts: [String: Int] {
        get async { (try? await loop.submit { self.router.dropped }.get()) ?? [:] }
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

    /// On the loop: sends, and asks the beacon to introduce us while there is no fresh path.
    private func sendNow(_ payload: [UInt8], to peer: PublicKey, candidates: [Endpoint]) {
        let time = TunnelTime.current()
        transmit(router.send(payload, to: peer, candidates: candidates, time: time))
        guard beacon != nil else { return }
        if case .direct? = router.path(to: peer, time: time) { return }
        if let asked = lastConnectRequest[peer], time.now - asked < 5_000_000 { return }
        lastConnectRequest[peer] = time.now
        sendToBeacon(BeaconMessage.signedConnect(identity, to: peer, timestamp: nextBeaconTimestamp()))
    }

    private func sayHello() {
        sendToBeacon(BeaconMessage.signedHello(identity, timestamp: nextBeaconTimestamp()))
    }

    private var beaconTimestamp: UInt64 = 0

    /// Unix milliseconds, made strictly increasing: the beacon refuses a
    /// timestamp it has seen, so two messages within a millisecond differ.
    private func nextBeaconTimestamp() -> UInt64 {
        beaconTimestamp = max(UInt64(max(0, TunnelTime.current().wall)), beaconTimestamp + 1)
        return beaconTimestamp
    }

    private func sendToBeacon(_ message: BeaconMessage) {
        guard let channel, let beaconAddress else { return }
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: beaconAddress, data: channel.allocator.buffer(bytes: message.encoded)), promise: nil)
    }

    /// Registers the handler of a virtual port; it runs on the tunnel loop.
    public func listen(port: UInt16, _ handler: @escaping @Sendable (PublicKey, OverlayMessage) -> Void) {
        loop.execute { self.services[port] = handler }
    }

    /// Sets the trust gate for every port but 7 and 444 (runs on the tunnel loop).
    public func setTrustGate(_ gate: @escaping @Sendable (PublicKey) -> Bool) {
        loop.execute { self.isTrusted = gate }
    }

    /// Round trip in microseconds to `peer`'s echo port, or a timeout error.
    public func ping(_ peer: PublicKey, candidates: [Endpoint], timeout: TimeAmount = .seconds(3)) async throws -> Int64 {
        try await loop.flatSubmit { () -> EventLoopFuture<Int64> in
            let id = UInt64.random(in: 1...UInt64.max)
            let promise = self.loop.makePromise(of: Int64.self)
            self.pings[id] = (TunnelTime.current().now, promise)
            let message = OverlayMessage(sourcePort: Self.pingClientPort, destinationPort: OverlayMessage.echoPort, data: id.bigEndianByteArray)
            self.sendNow(message.encoded, to: peer, candidates: candidates)
            self.loop.assumeIsolated().scheduleTask(in: timeout) {
                self.pings.removeValue(forKey: id)?.promise.fail(TunnelError.timeout(peer.fingerprint, Int(timeout.nanoseconds / 1_000_000_000)))
            }
            return promise.futureResult
        }.get()
    }

    public func path(to peer: PublicKey) async -> Route? {
        try? await loop.submit { self.router.path(to: peer, time: TunnelTime.current()) }.get()
    }

    // MARK: On the loop

    fileprivate func received(_ bytes: [UInt8], from source: SocketAddress) {
        guard let ip = source.ipAddress, let port = source.port else { return }
        let endpoint = Endpoint(host: ip, port: UInt16(port))
        let time = TunnelTime.current()
        if BeaconMessage.isBeaconDatagram(bytes) {
            guard endpoint == beacon else { return router.countExternal("beacon message from elsewhere") }
            guard let message = try? BeaconMessage.parse(bytes) else { return router.countExternal("malformed beacon message") }
            switch message {
            case .welcome(let observed):
                if observed != observedEndpoint {
                    observedEndpoint = observed
                    logger.info("beacon sees this node at", metadata: ["endpoint": "\(observed)"])
                    onObservedEndpoint?(observed)
                }
            case let .punch(peer, at):
                transmit(router.punch(peer, at: at, time: time))
            case let .relayed(peer, inner):
                // The beacon's word for the source is not trusted: the tunnel's
                // own authentication decides who sent it.
                _ = peer
                let (outgoing, delivered) = router.receive(inner, from: .relay, time: time)
                transmit(outgoing)
                for delivery in delivered { dispatch(delivery) }
            case .refused(let reason):
                logger.debug("beacon refused", metadata: ["reason": "\(reason)"])
            case .hello, .connect, .relay:
                router.countExternal("beacon message meant for the beacon")
            }
            return
        }
        let (outgoing, delivered) = router.receive(bytes, from: .direct(endpoint), time: time)
        transmit(outgoing)
        for delivery in delivered { dispatch(delivery) }
    }

    private func dispatch(_ delivery: TunnelRouter.Delivery) {
        guard let message = try? OverlayMessage.parse(delivery.payload) else {
            logger.debug("unreadable overlay message", metadata: ["from": "\(delivery.from.fingerprint)"])
            return
        }
        if message.kind == .stream {
            let gate = isTrusted
            let (outgoing, events) = streams.receive(message, from: delivery.from, now: TunnelTime.current().now) { port in
                port == OverlayMessage.echoPort || port == OverlayMessage.trustPort || gate(delivery.from)
            }
            sendStream(outgoing)
            handle(events)
            // Acks free window space: let bulk senders continue.
            for sender in Array(streamSenders.values) { sender() }
            return
        }
        switch message.destinationPort {
        case OverlayMessage.echoPort:
            // The echo service answers anyone with a tunnel: ping needs no trust.
            let reply = OverlayMessage(sourcePort: OverlayMessage.echoPort, destinationPort: message.sourcePort, data: message.data)
            transmit(router.send(reply.encoded, to: delivery.from, candidates: [], time: TunnelTime.current()))
            return
        case Self.pingClientPort:
            guard message.data.count == 8 else { return } // (an empty echo only opened the tunnel)
            let id = message.data.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if let waiting = pings.removeValue(forKey: id) { waiting.promise.succeed(TunnelTime.current().now - waiting.sentAt) }
            return
        default:
            break
        }
        if message.destinationPort != OverlayMessage.trustPort, !isTrusted(delivery.from) {
            refusedUntrusted += 1
            logger.debug("refused: peer not trusted", metadata: ["port": "\(message.destinationPort)", "peer": "\(delivery.from.fingerprint)"])
            return
        }
        if let service = services[message.destinationPort] {
            service(delivery.from, message)
        } else {
            logger.debug("message for a closed port", metadata: ["port": "\(message.destinationPort)"])
        }
    }

    private func transmit(_ outgoing: [TunnelRouter.Outgoing]) {
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
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: datagram)), promise: nil)
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

extension UInt64 {
    var bigEndianByteArray: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * $0)) } }
}
