#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
internal import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotCrypto
public import PilotRegistry
public import PilotTransport
public import ServiceLifecycle
internal import PilotWire

/// The registry role: the directory engine behind a TCP listener, every
/// connection an encrypted channel. All state lives on one event loop, so
/// the engine needs no locks; SQLite commits happen on it too (WAL, no
/// fsync per commit), before each answer.
public final class RegistryService: Service, @unchecked Sendable {
    public struct Options: Sendable {
        public var listen = Endpoint(host: "0.0.0.0", port: 9000)
        public var http: Endpoint? = Endpoint(host: "127.0.0.1", port: 9080)
        /// Who may read the HTTP view (TLS and a token beyond loopback; a
        /// token on a join-token registry, wherever it listens).
        public var httpAccess = HTTPAccess()
        public var stateDirectory: String
        public var engine = RegistryEngine.Configuration()
        public var connectionsPerAddress = 4096
        public var maxFrameBytes = RegistryProtocol.maxMessageBytes + 64
        public var idleTimeoutSeconds: Int64 = 300
        public var handshakeTimeoutMilliseconds: Int64 = 10_000

        public init(stateDirectory: String) { self.stateDirectory = stateDirectory }
    }

    public let options: Options
    public let identity: SigningKey
    public private(set) var boundAddress = ""
    public private(set) var httpAddress: String?
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    private let now: @Sendable () -> Int64

    // Confined to `loop`.
    var engine: RegistryEngine
    private let store: RegistryStore
    private var connectionsByAddress: [String: Int] = [:]
    private var watchers: [ObjectIdentifier: SecureStreamHandler] = [:]
    private var channels: [any Channel] = []
    private var controlFile: ControlServer.SocketFile?

    public init(options: Options, identity: SigningKey, logger: Logger, now: @escaping @Sendable () -> Int64 = WallClock.nowMilliseconds) throws {
        self.options = options
        self.identity = identity
        self.logger = logger
        self.now = now
        store = try RegistryStore(path: options.stateDirectory + "/registry.db")
        let records = try store.loadAll()
        engine = RegistryEngine(configuration: options.engine, records: records, now: now(), ticketIssuer: identity)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = group.next()
        logger.info("registry state loaded", metadata: ["nodes": "\(records.count)", "path": "\(options.stateDirectory)/registry.db"])
    }

    /// Binds the listeners and reports their addresses (a log line and
    /// `registry.addr` / `registry-http.addr` in the state directory).
    public func start() async throws {
        raiseOpenFileLimit()
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Requests are small (a heartbeat is under 600 bytes): a fixed 512-byte
            // read buffer (larger frames take a few reads) instead of the adaptive
            // one, which keeps 2 KiB per channel across thousands of idle ones.
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 512))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.accept(channel) }
            }
            .bind(host: options.listen.host, port: Int(options.listen.port)).get()
        channels.append(server)
        boundAddress = server.localAddress?.endpointDescription ?? "?"
        reportAddress(boundAddress, to: options.stateDirectory + "/registry.addr")
        logger.info("registry listening", metadata: ["address": "\(boundAddress)", "key": "\(identity.publicKey.fingerprint)"])

        if let http = options.http {
            // Only registered nodes may read a join-token registry's directory over the
            // protocol; its HTTP view asks for a token too.
            let closed = options.engine.joinToken != nil && options.httpAccess.token == nil
                ? "this registry admits only nodes with the join token, so its HTTP view needs --http-token @FILE" : nil
            let handler = options.httpAccess.guarding(closed: closed) { [self] request, loop in loop.makeSucceededFuture(self.statusResponse(request.path)) }
            let status = try await StatusPage.start(group: group, at: http, tls: try options.httpAccess.serverContext(logger: logger), handler: handler)
            channels.append(status)
            httpAddress = status.localAddress?.endpointDescription
            reportAddress(httpAddress ?? "?", to: options.stateDirectory + "/registry-http.addr")
            logger.info("registry status page", metadata: ["url": "\(options.httpAccess.tls == nil ? "http" : "https")://\(httpAddress ?? "?")/"])
        }

        let controlPath = ControlSocket.path(stateDirectory: options.stateDirectory, name: "registry.sock")
        channels.append(try await ControlServer.start(group: group, path: controlPath) { [self] request in await self.control(request) })
        controlFile = ControlServer.SocketFile(controlPath)

        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            self.publish(self.engine.sweep(now: self.now()))
        }
        // Connections come and go in bursts (a fleet reconnecting after a
        // restart); hand the freed heap back to the system now and then.
        loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(30)) { _ in
            releaseFreeMemory()
        }
    }

    /// Runs until graceful shutdown is asked for (a swift-service-lifecycle
    /// service), then closes its listeners and connections.
    public func run() async throws {
        try? await gracefulShutdown()
        ShutdownProgress.shared.waiting("registry")
        try? await shutdown()
        ShutdownProgress.shared.finished("registry")
    }

    public func shutdown() async throws {
        for channel in channels { try? await channel.close() }
        controlFile?.removeIfStillOurs()
        try await group.shutdownGracefully()
    }

    /// Frees a hostname claim (operator action, from `pilot registry revoke`).
    public func revoke(hostname: String) async throws -> NodeRecord {
        try await loop.submit { [self] in
            let record = try self.engine.revoke(hostname: hostname)
            try self.store.save(record)
            return record
        }.get()
    }

    /// The registry host's own control socket: operator actions.
    func control(_ request: JSONValue) async -> JSONValue {
        switch request["cmd"]?.stringValue {
        case "revoke":
            guard let hostname = request["hostname"]?.stringValue else { return ControlSocket.failure("revoke needs a hostname") }
            do {
                let record = try await revoke(hostname: hostname)
                logger.notice("hostname released by the operator", metadata: ["hostname": "\(hostname)", "key": "\(record.publicKey.fingerprint)"])
                return ControlSocket.ok(JSONObject([("address", .string(record.address.description))]))
            } catch {
                return ControlSocket.failure("\(error)")
            }
        case "status":
            return ControlSocket.ok(JSONObject([("address", .string(boundAddress)), ("key", .string(identity.publicKey.base64))]))
        default:
            return ControlSocket.failure("unknown registry command")
        }
    }

    // MARK: Connections (on the loop)

    private func accept(_ channel: any Channel) throws {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let connection = RegistryConnection(service: self, address: address)
        let handler = SecureStreamHandler(
            channel: .responder(identity: identity, preference: AEADAlgorithm.localPreference()),
            maxPayload: options.maxFrameBytes, handshakeTimeout: .milliseconds(options.handshakeTimeoutMilliseconds),
            idleTimeout: .seconds(options.idleTimeoutSeconds), delegate: connection)
        connection.stream = handler
        try channel.pipeline.syncOperations.addHandler(handler)
        let open = connectionsByAddress[address, default: 0]
        if open >= options.connectionsPerAddress {
            logger.debug("refusing connection: per-address limit", metadata: ["address": "\(address)"])
            handler.refusal = "too many connections from \(address) (limit \(options.connectionsPerAddress))"
            connection.counted = false
            return
        }
        connectionsByAddress[address] = open + 1
    }

    func closed(_ connection: RegistryConnection) {
        if connection.counted {
            let remaining = connectionsByAddress[connection.address, default: 1] - 1
            connectionsByAddress[connection.address] = remaining > 0 ? remaining : nil
        }
        if let stream = connection.stream { watchers[ObjectIdentifier(stream)] = nil }
    }

    func handle(_ message: [UInt8], from connection: RegistryConnection) {
        guard let stream = connection.stream, let session = connection.session else { return }
        var outcome = engine.handle(message, session: session, now: now())
        if let changed = outcome.changed {
            do { try store.save(changed) } catch {
                logger.error("cannot persist registry change", metadata: ["error": "\(error)"])
                outcome.response = RegistryProtocol.errorResponse(id: nil, .badRequest("the registry could not store the change; try again"))
            }
        }
        stream.send(outcome.response)
        if outcome.startWatching { watchers[ObjectIdentifier(stream)] = stream }
        publish(outcome.events)
    }

    private func publish(_ events: [PresenceEvent]) {
        for event in events {
            logger.info("presence", metadata: ["node": "\(event.hostname)", "address": "\(event.address)", "presence": "\(event.presence.rawValue)"])
            let message = RegistryProtocol.event(event)
            for watcher in watchers.values { watcher.send(message) }
        }
    }

    // MARK: Status page (on the loop)

    private func statusResponse(_ path: String) -> StatusPage.Response {
        let views = engine.directory.search("", onlineOnly: false, now: now())
        switch path {
        case "/api/nodes":
            let body = JSONValue.object(JSONObject([("nodes", .array(views.map(RegistryProtocol.json)))])).description
            return .init(status: 200, contentType: "application/json", body: body)
        case "/", "/index.html":
            return .init(status: 200, contentType: "text/html; charset=utf-8", body: StatusPage.html(views))
        default:
            return .init(status: 404, contentType: "text/plain", body: "not found\n")
        }
    }
}

/// One node's connection to the registry.
final class RegistryConnection: SecureStreamDelegate {
    let service: RegistryService
    let address: String
    weak var stream: SecureStreamHandler?
    var session: SessionContext?
    var counted = true

    init(service: RegistryService, address: String) {
        self.service = service
        self.address = address
    }

    func secureStreamEstablished(_ stream: SecureStreamHandler) {
        guard let identity = stream.remoteIdentity else { return stream.close(reason: "no peer identity") }
        session = SessionContext(identity: identity, handshakeHash: stream.handshakeHash, clientAddress: address)
    }

    func secureStream(_ stream: SecureStreamHandler, received message: [UInt8]) {
        service.handle(message, from: self)
    }

    func secureStreamClosed(_ stream: SecureStreamHandler, reason: String?) {
        if let reason { service.logger.debug("registry connection closed", metadata: ["address": "\(address)", "reason": "\(reason)"]) }
        service.closed(self)
    }
}
