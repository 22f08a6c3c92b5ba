#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
internal import NIOCore
internal import NIOPosix
public import PilotCrypto
public import PilotCore
internal import PilotTransport
public import ServiceLifecycle
public import PilotWire

/// The beacon role: `BeaconCore` behind a UDP socket (one event loop),
/// with a control socket in its state directory that reports its counters
/// (`pilot beacon status`), so operators and tests can see what it relayed.
///
/// It serves the nodes of one registry, whose key checks their tickets:
/// given (`registryKey`), else pinned in `STATE/registry.key`, else learnt
/// from the registry at `registry` on first contact and pinned (trust on
/// first use, as nodes do); until then it serves no one.
public final class BeaconService: Service, @unchecked Sendable {
    public struct Options: Sendable {
        public var listen = Endpoint(host: "0.0.0.0", port: 9001)
        public var stateDirectory: String
        public var limits = BeaconCore.Limits()
        /// The registry's key (`--registry-key`), which wins over a pin.
        public var registryKey: PublicKey?
        /// Where to learn the registry's key when none is given or pinned (`--registry`).
        public var registry: Endpoint?
        public init(stateDirectory: String) { self.stateDirectory = stateDirectory }
        public var pinPath: String { stateDirectory + "/registry.key" }
    }

    public let options: Options
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: any EventLoop { group.next() }
    private var core: BeaconCore
    /// The registry's key as known at start (given or pinned); `core` holds the current one.
    private let initialIssuer: PublicKey?
    private var channel: (any Channel)?
    private var control: (any Channel)?
    private var controlFile: ControlServer.SocketFile?
    public private(set) var boundAddress = ""

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        let pinned = options.registryKey == nil ? RegistryKeyPin.read(options.pinPath) : nil
        initialIssuer = options.registryKey ?? pinned
        core = BeaconCore(limits: options.limits, issuer: initialIssuer)
        if let pinned, let given = options.registryKey, pinned != given {
            logger.notice("the given registry key differs from the pinned one; using the given key",
                          metadata: ["given": "\(given.fingerprint)", "pinned": "\(pinned.fingerprint)"])
        }
    }

    public func start() async throws {
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramReader { bytes, source, channel in self.received(bytes, from: source, on: channel) }) }
            }
            .bind(host: options.listen.host, port: Int(options.listen.port)).get()
        self.channel = channel
        boundAddress = channel.localAddress?.endpointDescription ?? "?"
        try LocalFile.makeDirectory(options.stateDirectory, mode: 0o700)
        reportAddress(boundAddress, to: options.stateDirectory + "/beacon.addr")
        control = try await ControlServer.start(group: group, path: ControlSocket.path(stateDirectory: options.stateDirectory, name: "beacon.sock")) {
            [self] _ in await self.status()
        }
        controlFile = ControlServer.SocketFile(ControlSocket.path(stateDirectory: options.stateDirectory, name: "beacon.sock"))
        loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { [self] _ in self.core.expire(time: TunnelTime.current()) }
        logger.info("beacon listening", metadata: ["address": "\(boundAddress)", "registry_key": "\(initialIssuer?.fingerprint ?? "not known yet")"])
        if initialIssuer == nil, let registry = options.registry { loop.execute { self.learnRegistryKey(from: registry, attempt: 1) } }
    }

    /// Asks the registry for its key (a handshake, nothing more) until it
    /// answers, then pins it; meanwhile every hello is refused and counted.
    private func learnRegistryKey(from registry: Endpoint, attempt: Int) {
        RegistryKeyProbe.fetch(registry, on: loop).whenComplete { [self] result in
            switch result {
            case .success(let key):
                core.trust(issuer: key)
                do { try LocalFile.writeAtomically(options.pinPath, Array("\(key.base64)\n".utf8), mode: 0o600) } catch {
                    logger.error("cannot save the registry's key", metadata: ["file": "\(options.pinPath)", "error": "\(error)"])
                }
                logger.notice("pinned the registry's key on first use", metadata: ["key": "\(key.fingerprint)", "file": "\(options.pinPath)"])
            case .failure(let error):
                if attempt == 1 || attempt % 30 == 0 {
                    logger.warning("cannot learn the registry's key yet; serving no one until then",
                                   metadata: ["registry": "\(registry)", "error": "\(error)", "attempt": "\(attempt)"])
                }
                guard channel?.isActive == true else { return }
                loop.scheduleTask(in: .seconds(Int64(min(attempt, 5)))) { self.learnRegistryKey(from: registry, attempt: attempt + 1) }
            }
        }
    }

    /// Runs until graceful shutdown is asked for (a swift-service-lifecycle
    /// service), then closes its socket and control socket.
    public func run() async throws {
        try? await gracefulShutdown()
        ShutdownProgress.shared.waiting("beacon")
        try? await channel?.close()
        try? await control?.close()
        controlFile?.removeIfStillOurs()
        try? await group.shutdownGracefully()
        ShutdownProgress.shared.finished("beacon")
    }

    func status() async -> JSONValue {
        let counters = (try? await loop.submit { (self.core.counters, self.core.nodeCount, self.core.issuer) }.get())
        guard let (counters, nodes, issuer) = counters else { return ControlSocket.failure("beacon not running") }
        return ControlSocket.ok(JSONObject([
            ("address", .string(boundAddress)), ("nodes", .number(Double(nodes))),
            ("registry_key", issuer.map { .string($0.base64) } ?? .null),
            ("hellos", .number(Double(counters.hellos))), ("punches", .number(Double(counters.punches))),
            ("relayed_datagrams", .number(Double(counters.relayedDatagrams))), ("relayed_bytes", .number(Double(counters.relayedBytes))),
            ("dropped", .object(JSONObject(counters.dropped.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
        ]))
    }

    fileprivate func received(_ bytes: [UInt8], from source: SocketAddress, on channel: any Channel) {
        guard let ip = source.ipAddress, let port = source.port else { return }
        for out in core.receive(bytes, from: Endpoint(host: ip, port: UInt16(port)), time: TunnelTime.current()) {
            guard let address = try? SocketAddress(ipAddress: out.to.host, port: Int(out.to.port)) else { continue }
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: out.datagram)), promise: nil)
        }
    }

}
