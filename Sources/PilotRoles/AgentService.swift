public import Logging
internal import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotCrypto
public import PilotNode
public import PilotTransport
internal import PilotRegistry
internal import PilotWire
public import PilotEvents

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
        /// The tunnel socket (port 0 picks one).
        public var tunnelListen = Endpoint(host: "0.0.0.0", port: 0)
        /// Endpoints to publish instead of the ones found on the interfaces.
        public var advertise: [Endpoint] = []
        /// The beacon for NAT traversal and relay.
        public var beacon: Endpoint?
        /// The fleet's event hub (a hostname) that publish and subscribe use by default.
        public var hub: String?
        public var events = EventService.Options()
        /// Collection interval and service checks (nil: no metrics).
        public var metrics: MetricsLoop.Options?

        public init(stateDirectory: String, configPath: String, hostname: String) {
            self.stateDirectory = stateDirectory
            self.configPath = configPath
            self.hostname = hostname
        }
    }

    public let options: Options
    let identity: SigningKey
    let logger: Logger
    /// One thread: the tunnels, the broker, the control socket and any role
    /// built on this node (the aggregator) share it, so their state needs
    /// no locks.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Control commands of a role built on this node (e.g. `alerts`).
    public var extraCommands: [String: @Sendable (JSONValue) async -> JSONValue] = [:]
    /// Sections a role adds to `pilot status --json` (the store's, …).
    public var extraStatus: [String: @Sendable () async -> JSONValue] = [:]
    public private(set) var registry: RegistryClient?
    public let tunnels: TunnelEndpoint
    public private(set) var trust: TrustService?
    public private(set) var events: EventService?
    public private(set) var metrics: MetricsLoop?
    private var control: (any Channel)?
    public let controlPath: String

    public init(options: Options, identity: SigningKey, logger: Logger) {
        self.options = options
        self.identity = identity
        self.logger = logger
        controlPath = ControlSocket.path(stateDirectory: options.stateDirectory)
        tunnels = TunnelEndpoint(identity: identity, loop: group.next(), logger: logger, beacon: options.beacon)
    }

    public func start() async throws {
        try await tunnels.start(listen: options.tunnelListen)
        let endpoints = advertisedEndpoints()
        if let endpoint = options.registry {
            var client = RegistryClient.Options(registry: endpoint, hostname: options.hostname, pinPath: options.stateDirectory + "/registry.key")
            client.tags = options.tags
            client.keepaliveSeconds = options.keepaliveSeconds
            client.joinToken = options.joinToken
            client.registryKey = options.registryKey
            client.endpoints = endpoints.map(\.description)
            registry = RegistryClient(options: client, identity: identity, loop: group.next(), logger: logger)
            // Peers elsewhere reach us at our public mapping, which only the beacon can tell.
            let local = endpoints.map(\.description)
            tunnels.whenObservedEndpointChanges { [registry] observed in
                registry?.updateEndpoints(local.contains(observed.description) ? local : local + [observed.description])
            }
        }
        let registry = self.registry
        trust = try TrustService(
            identity: identity, hostname: options.hostname, stateDirectory: options.stateDirectory, joinToken: options.joinToken,
            tunnels: tunnels, logger: logger
        ) { host in
            guard let registry else { throw TrustServiceError("this node has no registry configured, so it cannot find \(host)") }
            return try await registry.lookup(host)
        }
        let identity = self.identity
        events = try EventService(tunnels: tunnels, stateDirectory: options.stateDirectory, options: options.events, logger: logger) { hub in
            guard let registry else { throw EventServiceError("this node has no registry configured, so it cannot find the hub \(hub)") }
            let view = try await registry.lookup(hub)
            guard view.record.publicKey != identity.publicKey else {
                throw EventServiceError("\(hub) is this node itself; publish and subscribe from another node of the fleet")
            }
            let candidates = view.record.endpoints.compactMap { try? Endpoint(parsing: $0) }
            guard !candidates.isEmpty else { throw EventServiceError("the hub \(hub) has published no tunnel endpoint") }
            return EventService.HubAddress(hostname: view.record.hostname, key: view.record.publicKey, candidates: candidates)
        }
        events?.selfNames = [options.hostname]
        events?.resumeSpools()
        control = try await ControlServer.start(group: group, path: controlPath, handler: { [self] request in await self.handle(request) },
                                                streaming: ["publish": { [self] in self.publish($0, $1) }, "subscribe": { [self] in self.subscribe($0, $1) }])
        logger.info("node started", metadata: [
            "hostname": "\(options.hostname)", "key": "\(identity.publicKey.fingerprint)", "control": "\(controlPath)",
            "registry": "\(options.registry?.description ?? "none")",
            "tunnel": "\(tunnels.boundAddress?.description ?? "?")", "endpoints": "\(endpoints.map(\.description).joined(separator: " "))",
        ])
        if registry == nil { logger.warning("no registry configured (pilot init --registry HOST:PORT); running unregistered") }
        registry?.start()
        startMetrics()
    }

    public func run() async throws {
        try await control?.closeFuture.get()
    }

    /// What peers should try: the given list, else the bound address when it
    /// is specific, else every IPv4 address of this host's interfaces.
    private func advertisedEndpoints() -> [Endpoint] {
        if !options.advertise.isEmpty { return options.advertise }
        guard let bound = tunnels.boundAddress else { return [] }
        if bound.host != "0.0.0.0" { return [bound] }
        let local = ((try? System.enumerateDevices()) ?? []).compactMap { device -> Endpoint? in
            guard case .v4? = device.address, let ip = device.address?.ipAddress,
                  !ip.hasPrefix("127."), !ip.hasPrefix("169.254.") else { return nil }
            return Endpoint(host: ip, port: bound.port)
        }
        var unique: [Endpoint] = []
        for endpoint in local where !unique.contains(endpoint) { unique.append(endpoint) }
        return unique.isEmpty ? [Endpoint(host: "127.0.0.1", port: bound.port)] : Array(unique.prefix(8))
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
        case "ping":
            return await ping(request)
        case "handshake", "approve", "reject", "untrust", "pending", "trust":
            return await trustCommand(request)
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
        case let other where extraCommands[other] != nil:
            return await extraCommands[other]!(request)
        case let other:
            return ControlSocket.failure("unknown control command '\(other)'")
        }
    }

    private func trustCommand(_ request: JSONValue) async -> JSONValue {
        guard let trust else { return ControlSocket.failure("the trust service is not running") }
        let host = request["host"]?.stringValue ?? ""
        func entries(_ table: [PublicKey: TrustBook.Entry]) -> JSONValue {
            .array(table.values.sorted { $0.hostname < $1.hostname }.map { entry in
                .object(JSONObject([("hostname", .string(entry.hostname)), ("key", .string(entry.key.fingerprint)),
                                    ("justification", .string(entry.justification)), ("since", .number(Double(entry.since)))]))
            })
        }
        do {
            switch request["cmd"]?.stringValue {
            case "handshake":
                guard !host.isEmpty else { return ControlSocket.failure("handshake needs a host") }
                let status = try await trust.handshake(host: host, justification: request["why"]?.stringValue ?? "")
                return ControlSocket.ok(JSONObject([("status", .string(status))]))
            case "approve":
                let entry = try await trust.approve(host)
                return ControlSocket.ok(JSONObject([("hostname", .string(entry.hostname))]))
            case "reject":
                let entry = try await trust.reject(host)
                return ControlSocket.ok(JSONObject([("hostname", .string(entry.hostname))]))
            case "untrust":
                let entry = try await trust.untrust(host)
                return ControlSocket.ok(JSONObject([("hostname", .string(entry.hostname))]))
            case "pending":
                let book = await trust.snapshot()
                return ControlSocket.ok(JSONObject([("incoming", entries(book.incoming)), ("outgoing", entries(book.outgoing))]))
            default:
                let book = await trust.snapshot()
                return ControlSocket.ok(JSONObject([("trusted", entries(book.trusted))]))
            }
        } catch {
            return ControlSocket.failure("\(error)")
        }
    }

    /// One echo round trip to a node named by hostname or address.
    private func ping(_ request: JSONValue) async -> JSONValue {
        guard let registry else { return ControlSocket.failure("this node has no registry configured, so it cannot find peers") }
        guard let target = request["host"]?.stringValue, !target.isEmpty else { return ControlSocket.failure("ping needs a host") }
        let view: NodeView
        do { view = try await registry.lookup(target) } catch {
            return ControlSocket.failure("\(error)")
        }
        let candidates = view.record.endpoints.compactMap { try? Endpoint(parsing: $0) }
        guard !candidates.isEmpty else { return ControlSocket.failure("\(view.record.hostname) has published no tunnel endpoint") }
        if let stream = request["stream"] {
            guard let count = stream.int64Value, (1...1_000_000).contains(count) else {
                return ControlSocket.failure("a stream ping needs a count from 1 to 1000000")
            }
            do {
                let elapsed = try await tunnels.streamEcho(view.record.publicKey, candidates: candidates, count: Int(count))
                let path = await tunnels.path(to: view.record.publicKey)
                return ControlSocket.ok(JSONObject([
                    ("hostname", .string(view.record.hostname)), ("address", .string(view.record.address.description)),
                    ("echoed", .number(Double(count))), ("elapsed_us", .number(Double(elapsed))), ("path", path.map { .string($0.description) } ?? .null),
                ]))
            } catch {
                return ControlSocket.failure("\(error)")
            }
        }
        do {
            let rtt = try await tunnels.ping(view.record.publicKey, candidates: candidates)
            let path = await tunnels.path(to: view.record.publicKey)
            return ControlSocket.ok(JSONObject([
                ("hostname", .string(view.record.hostname)), ("address", .string(view.record.address.description)),
                ("rtt_us", .number(Double(rtt))), ("path", path.map { .string($0.description) } ?? .null),
            ]))
        } catch {
            return ControlSocket.failure("\(error)")
        }
    }

    /// Metrics and checks go to the hub through the spool, so a hub outage
    /// delays them but loses none.
    private func startMetrics() {
        guard let settings = options.metrics else { return }
        guard let hub = options.hub else {
            logger.notice("no hub configured (pilot init --hub NAME): metrics and checks are not collected")
            return
        }
        let events = self.events, logger = self.logger
        let loop = MetricsLoop(options: settings, loop: group.next(), logger: logger) { messages in
            let batch = messages.compactMap { message in (try? Topic(message.topic)).map { (topic: $0, payload: message.json) } }
            do { try await events?.publish(to: hub, messages: batch) } catch {
                logger.error("cannot publish metrics", metadata: ["hub": "\(hub)", "error": "\(error)"])
            }
        }
        metrics = loop
        loop.start()
        logger.info("collecting metrics", metadata: [
            "interval": "\(settings.intervalSeconds)s", "checks": "\(settings.checks.map(\.name).joined(separator: ","))", "hub": "\(hub)",
        ])
    }

    // MARK: Event stream

    private func hubName(_ request: JSONValue) throws -> String {
        guard let hub = request["to"]?.stringValue ?? request["from"]?.stringValue ?? options.hub else {
            throw EventServiceError("no hub given: use --to/--from HUB, or set one with 'pilot init --hub NAME'")
        }
        do { return try Hostname.validate(hub) } catch { throw EventServiceError("\(error)") }
    }

    /// `pilot publish`: payload lines after the request, then `END`; without
    /// a topic in the request, each line is `TOPIC PAYLOAD`. Each burst of
    /// lines is spooled in one transaction; the answer comes after `END`,
    /// once everything is spooled (or at the first error).
    private func publish(_ request: JSONValue, _ stream: ControlStream) {
        guard let events else { stream.send(ControlSocket.failure("the event service is not running")); return stream.close() }
        let hub: String, topic: Topic?
        do {
            hub = try hubName(request)
            topic = try request["topic"]?.stringValue.map { try Topic($0) }
        } catch {
            stream.send(ControlSocket.failure("\(error)"))
            return stream.close()
        }
        let acknowledged = request["ack"] != .bool(false)
        let maxBytes = options.events.limits.maxPayloadBytes
        final class State: @unchecked Sendable {
            var batch: [(topic: Topic, payload: String)] = []
            var topics = TopicCache()
            var count = 0
            var lineNumber = 0
            var failed = false
            var ended = false
            var inFlight = false
            /// A bad line ends the publication after what came before it is spooled.
            var badLine: String?
        }
        let state = State()
        @Sendable func finish(_ reply: JSONValue) {
            guard !state.failed else { return }
            state.failed = true
            stream.send(reply)
            stream.close()
        }
        @Sendable func flush() {
            guard !state.inFlight, !state.failed else { return }
            let batch = state.batch
            state.batch = []
            if batch.isEmpty {
                guard state.ended else { return }
                if let bad = state.badLine {
                    finish(ControlSocket.failure(bad + " (\(state.count) messages before it were published)"))
                } else {
                    finish(ControlSocket.ok(JSONObject([("published", .number(Double(state.count))), ("hub", .string(hub))])))
                }
                return
            }
            state.inFlight = true
            let loop = stream.eventLoop
            loop.makeFutureWithTask { try await events.publish(to: hub, messages: batch, acknowledged: acknowledged) }.whenComplete { result in
                state.inFlight = false
                switch result {
                case .success:
                    state.count += batch.count
                    flush()
                case .failure(let error):
                    finish(ControlSocket.failure("\(error)" + (state.count > 0 ? " (\(state.count) messages were published before)" : "")))
                }
            }
        }
        stream.onLine = { line in
            guard !state.failed, !state.ended else { return }
            if line.elementsEqual("END".utf8) {
                state.ended = true
                return flush()
            }
            state.lineNumber += 1
            var lineTopic = topic
            var payload = line
            if topic == nil {
                guard let space = line.firstIndex(of: 0x20), let parsed = try? state.topics.topic(line[..<space]) else {
                    state.badLine = "line \(state.lineNumber): expected TOPIC PAYLOAD"
                    state.ended = true
                    return flush()
                }
                lineTopic = parsed
                payload = line[(space + 1)...]
            }
            guard let lineTopic, payload.first == UInt8(ascii: "{"), payload.count <= maxBytes else {
                state.badLine = "payload line \(state.lineNumber): not a JSON object of at most \(maxBytes) bytes"
                state.ended = true
                return flush()
            }
            state.batch.append((lineTopic, String(decoding: payload, as: UTF8.self)))
            if state.batch.count == 1 { stream.eventLoop.execute { flush() } } // once per burst of lines
            if state.batch.count >= 5_000 { flush() }
        }
    }

    /// `pilot subscribe`: confirmation, then message lines; the CLI sends acks.
    private func subscribe(_ request: JSONValue, _ stream: ControlStream) {
        guard let events else { stream.send(ControlSocket.failure("the event service is not running")); return stream.close() }
        do {
            let hub = try hubName(request)
            guard case .array(let items)? = request["filters"], !items.isEmpty, items.count <= 64 else {
                throw EventServiceError("subscribe needs 1 to 64 filters")
            }
            let filters = try items.map { try TopicFilter($0.stringValue ?? "") }
            let durable = request["durable"]?.stringValue
            if let durable { try DurableName.validate(durable) }
            events.subscribe(hubName: hub, filters: filters, durable: durable, stream: stream)
        } catch {
            stream.send(ControlSocket.failure("\(error)"))
            stream.close()
        }
    }

    private func status() async -> JSONValue {
        var body = JSONObject([
            ("hostname", .string(options.hostname)),
            ("public_key", .string(identity.publicKey.base64)),
            ("fingerprint", .string(identity.publicKey.fingerprint)),
            ("state_dir", .string(options.stateDirectory)),
            ("registry", options.registry.map { .string($0.description) } ?? .null),
            ("tunnel", tunnels.boundAddress.map { .string($0.description) } ?? .null),
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
        body["hub"] = options.hub.map { .string($0) } ?? .null
        if let events { body["events"] = .object(await events.status()) }
        for (name, section) in extraStatus.sorted(by: { $0.key < $1.key }) { body[name] = await section() }
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
