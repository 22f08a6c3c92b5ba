#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
internal import NIOCore
internal import NIOPosix
public import PilotCore
internal import PilotTransport
public import ServiceLifecycle
public import PilotWire

/// The beacon role: `BeaconCore` behind a UDP socket (one event loop),
/// with a control socket in its state directory that reports its counters
/// (`pilot beacon status`), so operators and tests can see what it relayed.
public final class BeaconService: Service, @unchecked Sendable {
    public struct Options: Sendable {
        public var listen = Endpoint(host: "0.0.0.0", port: 9001)
        public var stateDirectory: String
        public var limits = BeaconCore.Limits()
        public init(stateDirectory: String) { self.stateDirectory = stateDirectory }
    }

    public let options: Options
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: any EventLoop { group.next() }
    private var core: BeaconCore
    private var channel: (any Channel)?
    private var control: (any Channel)?
    public private(set) var boundAddress = ""

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        core = BeaconCore(limits: options.limits)
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
        loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { [self] _ in self.core.expire(time: TunnelTime.current()) }
        logger.info("beacon listening", metadata: ["address": "\(boundAddress)"])
    }

    /// Runs until graceful shutdown is asked for (a swift-service-lifecycle
    /// service), then closes its socket and control socket.
    public func run() async throws {
        try? await gracefulShutdown()
        ShutdownProgress.shared.waiting("beacon")
        try? await channel?.close()
        try? await control?.close()
        unlink(ControlSocket.path(stateDirectory: options.stateDirectory, name: "beacon.sock"))
        try? await group.shutdownGracefully()
        ShutdownProgress.shared.finished("beacon")
    }

    func status() async -> JSONValue {
        let counters = (try? await loop.submit { (self.core.counters, self.core.nodeCount) }.get())
        guard let (counters, nodes) = counters else { return ControlSocket.failure("beacon not running") }
        return ControlSocket.ok(JSONObject([
            ("address", .string(boundAddress)), ("nodes", .number(Double(nodes))),
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
