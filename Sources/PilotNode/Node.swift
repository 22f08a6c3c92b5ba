#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
public import NIOCore
public import NIOPosix
public import PilotCore
public import PilotCrypto
internal import PilotRegistry
public import PilotTransport
internal import PilotWire

/// One node of the overlay, as every node daemon runs it (`pilot agent`,
/// `pilot aggregator`, `pilot store`, `pilot up`): its identity, registry
/// session, tunnels, trust, event service and control socket. Roles attach
/// to it through `NodeRole`; the node answers the control requests of every
/// node and passes the others to the role that registered them.
public final class Node: @unchecked Sendable {
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
        /// Tunnel peers held at most (see `TunnelRouter.Limits.maxPeers`).
        public var maxPeers = 100_000
        /// Endpoints to publish instead of the ones found on the interfaces.
        public var advertise: [Endpoint] = []
        /// The beacon for NAT traversal and relay.
        public var beacon: Endpoint?
        /// The fleet's event hub (a hostname) that publish and subscribe use by
        /// default; nil: the one the registry lists (`hub()`).
        public var hub: String?
        /// This node is a hub: it registers with the tag `pilot-hub`, so
        /// that nodes with no hub configured find it.
        public var announcesHub = false
        /// The registry connection's source address (see `RegistryClient.Options`).
        public var registrySource: String?
        public var events = EventService.Options()

        public init(stateDirectory: String, configPath: String, hostname: String) {
            self.stateDirectory = stateDirectory
            self.configPath = configPath
            self.hostname = hostname
        }
    }

    public let options: Options
    let identity: SigningKey
    public let logger: Logger
    /// One thread: the tunnels, the broker, the control socket and every
    /// role on this node share it, so their state needs no locks.
    public let group: any EventLoopGroup
    public let loop: any EventLoop
    /// The group this node made for itself, and shuts down when it stops.
    private let ownGroup: MultiThreadedEventLoopGroup?
    public private(set) var registry: RegistryClient?
    public let tunnels: TunnelEndpoint
    public private(set) var trust: TrustService?
    public private(set) var events: EventService?
    public let controlPath: String
    private var control: (any Channel)?
    private var controlFile: ControlServer.SocketFile?
    /// This process's hold on the state directory, from start to shutdown.
    private var stateLock: StateLock?
    private(set) var roles: [any NodeRole] = []
    private var requests = ControlRequests()

    /// A node on a thread of its own; or on `loop`, a thread it shares with
    /// other nodes of one process (the fleet simulator in pilot-bench).
    public init(options: Options, identity: SigningKey, logger: Logger, loop shared: (any EventLoop)? = nil) {
        self.options = options
        self.identity = identity
        self.logger = logger
        ownGroup = shared == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        group = shared ?? ownGroup!
        loop = group.next()
        controlPath = ControlSocket.path(stateDirectory: options.stateDirectory)
        tunnels = TunnelEndpoint(identity: identity, loop: loop, logger: logger, beacon: options.beacon, maxPeers: options.maxPeers)
        registerNodeRequests(&requests)
    }

    /// Adds a role; before `start`, which starts the roles in this order.
    public func attach(_ role: any NodeRole) {
        role.register(&requests)
        roles.append(role)
    }

    /// Whether a role on this node (or the node) answers `command`: how a
    /// role learns what runs beside it without reaching into it.
    public func answers(_ command: String) -> Bool { requests.commands.contains(command) }

    /// A control request answered in process, as the control socket would
    /// answer it: `{"ok":true,…}` or `{"ok":false,"error":…}`.
    public func request(_ command: String, _ fields: JSONObject = JSONObject()) async -> JSONValue {
        var line = fields
        line["cmd"] = .string(command)
        return await requests.reply(to: .object(line))
    }

    static let handshakeFloorsFile = "handshakes"

    /// Starts the node's own services, then each attached role.
    public func start() async throws {
        do { stateLock = try StateLock(directory: options.stateDirectory) } catch { throw NodeError("\(error)") }
        try await tunnels.keepHandshakeFloors(at: options.stateDirectory + "/" + Self.handshakeFloorsFile)
        // Handshakes only from keys this node knows: trusted ones, and those
        // the registry lists (asked once per unknown key, within a budget).
        if options.registry == nil {
            try await tunnels.requireKnownPeers(voucher: nil).get()
        } else {
            try await tunnels.requireKnownPeers { [weak self] key in await self?.registryLists(key) ?? false }.get()
        }
        try await tunnels.start(listen: options.tunnelListen)
        let endpoints = advertisedEndpoints()
        if let endpoint = options.registry {
            var client = RegistryClient.Options(registry: endpoint, hostname: options.hostname, pinPath: options.stateDirectory + "/registry.key")
            client.tags = options.tags
            client.announcedTags = options.announcesHub ? [Self.hubTag] : []
            client.keepaliveSeconds = options.keepaliveSeconds
            client.joinToken = options.joinToken
            client.registryKey = options.registryKey
            client.endpoints = endpoints.map(\.description)
            client.wantsBeaconTicket = options.beacon != nil
            client.sourceAddress = options.registrySource
            registry = RegistryClient(options: client, identity: identity, loop: loop, logger: logger)
            // The beacon serves only nodes the registry vouches for: its ticket goes in every hello.
            registry?.onBeaconTicket = { [tunnels] ticket in tunnels.renewBeaconTicket(ticket) }
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
        let trustBook = trust // read on the loop, where the hub runs
        let events = try EventService(tunnels: tunnels, stateDirectory: options.stateDirectory, options: options.events, logger: logger,
                                      publishers: { key in trustBook?.publisher(key) }) { hub in
            guard let registry else { throw EventServiceError("this node has no registry configured, so it cannot find the hub \(hub)") }
            let view = try await registry.lookup(hub)
            guard view.record.publicKey != identity.publicKey else {
                throw EventServiceError("\(hub) is this node itself; publish and subscribe from another node of the fleet")
            }
            let candidates = view.record.endpoints.compactMap { try? Endpoint(parsing: $0) }
            guard !candidates.isEmpty else { throw EventServiceError("the hub \(hub) has published no tunnel endpoint") }
            return EventService.HubAddress(hostname: view.record.hostname, key: view.record.publicKey, candidates: candidates)
        }
        self.events = events
        events.selfNames = [options.hostname]
        events.resumeSpools()
        let requests = self.requests
        control = try await ControlServer.start(group: loop, path: controlPath, handler: { request in await requests.reply(to: request) },
                                                streaming: ["publish": { [self] in self.publish($0, $1) }, "subscribe": { [self] in self.subscribe($0, $1) }])
        controlFile = ControlServer.SocketFile(controlPath)
        logger.info("node started", metadata: [
            "hostname": "\(options.hostname)", "key": "\(identity.publicKey.fingerprint)", "control": "\(controlPath)",
            "registry": "\(options.registry?.description ?? "none")",
            "tunnel": "\(tunnels.boundAddress?.description ?? "?")", "endpoints": "\(endpoints.map(\.description).joined(separator: " "))",
            "roles": "\(roles.map(\.name).joined(separator: ","))",
        ])
        if registry == nil { logger.warning("no registry configured (pilot init --registry HOST:PORT); running unregistered") }
        registry?.start()
        for role in roles {
            do { try await role.start(on: self) } catch { throw NodeError("the \(role.name): \(error)") }
        }
    }

    /// Stops the node's own services gracefully, after its roles: the
    /// control socket closed and its file removed, the event service
    /// drained (`EventService.shutdown`), the registry session and the
    /// tunnels closed. Reports what it waits for to `progress`.
    public func shutdown(progress: ShutdownProgress = .shared) async {
        progress.waiting("node", "closing the control socket")
        try? await control?.close()
        control = nil
        controlFile?.removeIfStillOurs()
        if let events { await events.shutdown(progress: progress) }
        progress.waiting("node", "closing the registry session and the tunnels")
        registry?.stop()
        await tunnels.stop()
        try? await ownGroup?.shutdownGracefully()
        stateLock?.release()
        logger.info("node stopped", metadata: ["hostname": "\(options.hostname)"])
        progress.finished("node")
    }

    /// Whether the registry lists `key` (false while it cannot be asked).
    private func registryLists(_ key: PublicKey) async -> Bool {
        guard let registry else { return false }
        do {
            _ = try await registry.lookup(key: key)
            return true
        } catch {
            return false
        }
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

    /// `pilot status --json`: the node's own fields, then each role's section.
    func status() async -> JSONObject {
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
        // What the tunnel refused (replays, forgeries, garbage, a full peer table), by reason.
        let drops = await tunnels.droppedCounts
        body["tunnel_drops"] = .object(JSONObject(drops.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))
        let table = await tunnels.peerTable
        body["tunnel_peers"] = .number(Double(table.peers))
        body["handshakes_under_load"] = .bool(table.underLoad)
        // Stream connections open, and those turned away as they opened (a full table, an untrusted peer).
        let streams = await tunnels.streamTable
        body["streams"] = .number(Double(streams.connections))
        body["streams_refused"] = .object(JSONObject(streams.refused.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))
        body["hub"] = options.hub.map { .string($0) } ?? .null
        if let events { body["events"] = .object(await events.status()) }
        body["roles"] = .array(roles.map { .string($0.name) })
        for role in roles {
            if let section = await role.statusSection() { body[role.name] = section }
        }
        return body
    }
}

public struct NodeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
