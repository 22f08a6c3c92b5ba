public import Logging
internal import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotCrypto
public import PilotNode
internal import PilotRegistry

/// The node daemon of a host (`pilot agent`): its registry session and the
/// control socket the CLI verbs reach it through. Metrics collection joins
/// it with the agent issue.
public final class AgentService: @unchecked Sendable {
    public struct Options: Sendable {
        public var stateDirectory: String
        public var configPath: String
        public var hostname: String
        public var registry: Endpoint?
        public var tags: [String] = []
        public var keepaliveSeconds: Int64 = 30
        public var joinToken: String?
        public var registryKey: PublicKey?

        public init(stateDirectory: String, configPath: String, hostname: String) {
            self.stateDirectory = stateDirectory
            self.configPath = configPath
            self.hostname = hostname
        }
    }

    public let options: Options
    let identity: SigningKey
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    public let registry: RegistryClient?
    private var control: (any Channel)?
    public let controlPath: String

    public init(options: Options, identity: SigningKey, logger: Logger) {
        self.options = options
        self.identity = identity
        self.logger = logger
        controlPath = ControlSocket.path(stateDirectory: options.stateDirectory)
        if let endpoint = options.registry {
            var client = RegistryClient.Options(registry: endpoint, hostname: options.hostname, pinPath: options.stateDirectory + "/registry.key")
            client.tags = options.tags
            client.keepaliveSeconds = options.keepaliveSeconds
            client.joinToken = options.joinToken
            client.registryKey = options.registryKey
            registry = RegistryClient(options: client, identity: identity, loop: group.next(), logger: logger)
        } else {
            registry = nil
        }
    }

    public func start() async throws {
        control = try await ControlServer.start(group: group, path: controlPath) { [self] request in await self.handle(request) }
        logger.info("node started", metadata: [
            "hostname": "\(options.hostname)", "key": "\(identity.publicKey.fingerprint)", "control": "\(controlPath)",
            "registry": "\(options.registry?.description ?? "none")",
        ])
        if registry == nil { logger.warning("no registry configured (pilot init --registry HOST:PORT); running unregistered") }
        registry?.start()
    }

    public func run() async throws {
        try await control?.closeFuture.get()
    }

    // MARK: Control requests

    func handle(_ request: JSONValue) async -> JSONValue {
        switch request["cmd"]?.stringValue ?? "" {
        case "status":
            return await status()
        case "peers":
            return await forward(.search, JSONObject([
                ("query", .string(request["search"]?.stringValue ?? "")), ("online", .bool(request["online"] == .bool(true))),
            ]))
        case "lookup":
            var body = JSONObject()
            if let hostname = request["hostname"]?.stringValue { body["hostname"] = .string(hostname) }
            if let address = request["address"]?.stringValue { body["address"] = .string(address) }
            return await forward(.lookup, body)
        case "set-tags":
            guard let registry else { return ControlSocket.failure("this node has no registry configured") }
            guard case .array(let items)? = request["tags"] else { return ControlSocket.failure("set-tags needs a list of tags") }
            do {
                let tags = try await registry.setTags(items.compactMap(\.stringValue))
                persistTags(tags)
                return ControlSocket.ok(JSONObject([("tags", .array(tags.map { .string($0) }))]))
            } catch {
                return ControlSocket.failure("\(error)")
            }
        case let other:
            return ControlSocket.failure("unknown control command '\(other)'")
        }
    }

    private func status() async -> JSONValue {
        var body = JSONObject([
            ("hostname", .string(options.hostname)),
            ("public_key", .string(identity.publicKey.base64)),
            ("fingerprint", .string(identity.publicKey.fingerprint)),
            ("state_dir", .string(options.stateDirectory)),
            ("registry", options.registry.map { .string($0.description) } ?? .null),
        ])
        if let registry {
            let status = await registry.currentStatus()
            body["address"] = status.address.map { .string($0.description) } ?? .null
            body["registered"] = .bool(status.registered)
            body["connected"] = .bool(status.connected)
            body["registry_key"] = status.registryKey.map { .string($0.fingerprint) } ?? .null
            body["tags"] = .array(status.tags.map { .string($0) })
            body["last_error"] = status.lastError.map { .string($0) } ?? .null
        }
        return ControlSocket.ok(body)
    }

    private func forward(_ operation: RegistryOperation, _ body: JSONObject) async -> JSONValue {
        guard let registry else { return ControlSocket.failure("this node has no registry configured (pilot init --registry HOST:PORT)") }
        do {
            return ControlSocket.ok(try await registry.request(operation, body))
        } catch {
            return ControlSocket.failure("\(error)")
        }
    }

    /// Tags set at run time survive a restart: they replace the `--tag` lines of the config.
    private func persistTags(_ tags: [String]) {
        do {
            var config = ConfigFile(path: options.configPath)
            if LocalFile.exists(options.configPath) {
                config = try ConfigFile(parsing: LocalFile.readText(options.configPath, maxBytes: ConfigFile.maxBytes), path: options.configPath)
            }
            config.setAll("--tag", tags)
            try LocalFile.writeAtomically(options.configPath, Array(config.rendered(header: ConfigFile.nodeHeader).utf8), mode: 0o600)
        } catch {
            logger.error("cannot save tags to the config", metadata: ["error": "\(error)"])
        }
    }
}
