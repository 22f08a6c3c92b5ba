public import Logging
public import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotCrypto
public import PilotRegistry
public import PilotTransport
public import PilotWire

/// The node's side of the registry: connect, check or pin the registry's
/// key, register, heartbeat every keepalive, re-register when the registry
/// forgot us, and reconnect with backoff while it is down. Requests from
/// the CLI (lookups, searches, tag changes) ride the same channel.
///
/// All state is confined to one event loop.
public final class RegistryClient: @unchecked Sendable {
    public struct Options: Sendable {
        public var registry: Endpoint
        public var hostname: String
        public var tags: [String] = []
        /// Tags the node's roles announce (`pilot-hub` on an aggregator):
        /// registered beside `tags`, and kept by every `setTags`.
        public var announcedTags: [String] = []
        public var endpoints: [String] = []
        public var keepaliveSeconds: Int64 = 30
        public var joinToken: String?
        /// The registry key given at init (`--registry-key`), else the one
        /// pinned on first contact in `pinPath`.
        public var registryKey: PublicKey?
        public var pinPath: String
        /// Ask for a beacon ticket (a beacon is configured): with each
        /// registration, and again at half of each ticket's lifetime.
        public var wantsBeaconTicket = false
        /// The source address of the connection (the fleet simulator's
        /// nodes, each on its own loopback address); nil lets the kernel pick.
        public var sourceAddress: String?

        public init(registry: Endpoint, hostname: String, pinPath: String) {
            self.registry = registry
            self.hostname = hostname
            self.pinPath = pinPath
        }
    }

    public struct Status: Sendable {
        public var connected = false
        public var registered = false
        public var address: Address?
        public var registryKey: PublicKey?
        public var lastError: String?
        public var tags: [String] = []
    }

    public private(set) var options: Options
    let identity: SigningKey
    let logger: Logger
    let loop: any EventLoop
    private let now: @Sendable () -> Int64

    // Loop-confined state.
    private var stream: SecureStreamHandler?
    private var status = Status()
    private var nextID: UInt64 = 1
    private var pending: [UInt64: EventLoopPromise<JSONObject>] = [:]
    private var registerID: UInt64?
    private var heartbeatTask: RepeatedTask?
    /// Bare heartbeats go unsigned (`RegistryOperation.isSigned`) unless the
    /// registry asked for signed ones.
    private var signsHeartbeats = false
    private var backoffSeconds: Double = 1
    private var stopped = false
    private var pinned: PublicKey?
    /// After an IK handshake failed against the pinned key, the next attempt
    /// uses XX to learn which key the registry offers, so the refusal can
    /// name both fingerprints.
    private var diagnoseWithXX = false
    private var ticketRenewal: Scheduled<Void>?
    public var onPresence: (@Sendable (PresenceEvent) -> Void)?
    public var onRegistered: (@Sendable (Address) -> Void)?
    /// Called on the loop with each beacon ticket the registry issues (checked: for this key, signed by the registry).
    public var onBeaconTicket: (@Sendable (BeaconTicket) -> Void)?

    public init(options: Options, identity: SigningKey, loop: any EventLoop, logger: Logger,
                now: @escaping @Sendable () -> Int64 = WallClock.nowMilliseconds) {
        self.options = options
        self.identity = identity
        self.loop = loop
        self.logger = logger
        self.now = now
        pinned = options.registryKey ?? Self.readPin(options.pinPath)
        status.tags = options.tags
    }

    public func start() {
        loop.execute { self.connect() }
    }

    public func stop() {
        loop.execute {
            self.stopped = true
            self.heartbeatTask?.cancel()
            self.ticketRenewal?.cancel()
            self.stream?.close(reason: "node stopping", tellPeer: false)
        }
    }

    public func currentStatus() async -> Status {
        (try? await loop.submit { self.status }.get()) ?? Status()
    }

    /// Sends a request once registered; fails at once when not connected.
    /// Every node a search finds, page after page (a reply holds what fits
    /// one message; the registry says where the next page starts).
    public func search(_ query: String, onlineOnly: Bool = false) async throws -> [JSONValue] {
        var nodes: [JSONValue] = []
        var body = JSONObject([("query", .string(query)), ("online", .bool(onlineOnly))])
        for _ in 0..<100_000 { // a page holds at least one node
            let reply = try await request(.search, body)
            if case .array(let page)? = reply["nodes"] { nodes += page }
            guard let next = reply["next"]?.stringValue else { return nodes }
            body["after"] = .string(next)
        }
        throw RegistryClientError(code: "too_many_pages", message: "the registry's search did not end after 100000 pages")
    }

    public func request(_ operation: RegistryOperation, _ body: JSONObject = JSONObject()) async throws -> JSONObject {
        try await loop.flatSubmit { () -> EventLoopFuture<JSONObject> in
            guard self.status.registered, self.stream != nil else {
                let reason = self.status.lastError.map { " (last error: \($0))" } ?? ""
                return self.loop.makeFailedFuture(RegistryClientError(code: "not_connected", message: "not connected to the registry at \(self.options.registry)\(reason)"))
            }
            return self.send(operation, body)
        }.get()
    }

    /// A node by hostname or overlay address, as the registry knows it.
    public func lookup(_ host: String) async throws -> NodeView {
        let isAddress = (try? Address(parsing: host)) != nil
        return try await lookup(JSONObject([(isAddress ? "address" : "hostname", .string(host))]))
    }

    /// The node that holds `key`, if the registry lists it: how a node
    /// vouches for a key that knocks on its tunnel.
    public func lookup(key: PublicKey) async throws -> NodeView {
        try await lookup(JSONObject([("public_key", .string(key.base64))]))
    }

    private func lookup(_ query: JSONObject) async throws -> NodeView {
        let reply = try await request(.lookup, query)
        guard let node = reply["node"] else { throw RegistryClientError(code: "bad_answer", message: "the registry's answer has no node") }
        do { return try RegistryProtocol.nodeView(node) } catch {
            throw RegistryClientError(code: "bad_answer", message: "the registry's answer is malformed: \(error)")
        }
    }

    /// New reachable endpoints (a NAT mapping learnt from the beacon):
    /// registers again with them when connected.
    public func updateEndpoints(_ endpoints: [String]) {
        loop.execute {
            guard endpoints != self.options.endpoints else { return }
            self.options.endpoints = endpoints
            if self.status.registered { self.register() }
        }
    }

    public func setTags(_ tags: [String]) async throws -> [String] {
        let tags = withAnnounced(tags)
        let reply = try await request(.setTags, JSONObject([("tags", .array(tags.map { .string($0) }))]))
        let stored = reply["node"]?["tags"].flatMap { value -> [String]? in
            if case .array(let items) = value { return items.compactMap(\.stringValue) }
            return nil
        } ?? tags
        try await loop.submit {
            self.options.tags = stored
            self.status.tags = stored
        }.get()
        return stored
    }

    // MARK: Connection lifecycle (on the loop)

    private func connect() {
        guard !stopped else { return }
        let handler: SecureStreamHandler
        do {
            let (channel, first) = try SecureChannel.initiator(
                identity: identity, responder: diagnoseWithXX ? nil : pinned, preference: AEADAlgorithm.localPreference())
            handler = SecureStreamHandler(channel: channel, firstFrame: first, maxPayload: RegistryProtocol.maxMessageBytes + 64,
                                          idleTimeout: .seconds(max(60, options.keepaliveSeconds * 4)), delegate: self)
        } catch {
            return fail("cannot start a handshake: \(error)")
        }
        stream = handler
        let bound = NIOLoopBound(handler, eventLoop: loop) // the initializer runs on this same loop
        var bootstrap = ClientBootstrap(group: loop)
        if let source = options.sourceAddress, let address = try? SocketAddress(ipAddress: source, port: 0) { bootstrap = bootstrap.bind(to: address) }
        bootstrap
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
            }
            .connect(host: options.registry.host, port: Int(options.registry.port))
            .assumeIsolated()
            .whenFailure { error in
                if self.stream === handler { self.stream = nil }
                self.fail("cannot reach the registry at \(self.options.registry): \(error)")
            }
    }

    private func fail(_ reason: String) {
        status.connected = false
        status.registered = false
        status.lastError = reason
        heartbeatTask?.cancel()
        heartbeatTask = nil
        ticketRenewal?.cancel()
        ticketRenewal = nil
        for promise in pending.values { promise.fail(RegistryClientError(code: "disconnected", message: reason)) }
        pending = [:]
        registerID = nil
        guard !stopped else { return }
        let delay = backoffSeconds * Double.random(in: 0.8...1.2)
        logger.warning("registry unavailable, retrying", metadata: ["reason": "\(reason)", "in": "\(Int(delay * 1000)) ms"])
        backoffSeconds = min(backoffSeconds * 2, 30)
        loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay * 1000))) { self.connect() }
    }

    private func withAnnounced(_ tags: [String]) -> [String] {
        tags + options.announcedTags.filter { !tags.contains($0) }
    }

    private func register() {
        let sentEndpoints = options.endpoints
        var body = JSONObject([
            ("hostname", .string(options.hostname)),
            ("tags", .array(withAnnounced(options.tags).map { .string($0) })),
            ("endpoints", .array(options.endpoints.map { .string($0) })),
        ])
        if let token = options.joinToken, let stream {
            body["join_proof"] = .string(RegistryProtocol.joinProof(token: token, handshakeHash: stream.handshakeHash))
        }
        if options.wantsBeaconTicket { body["beacon_ticket"] = .bool(true) }
        send(.register, body).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let reply):
                self.took(reply)
                let address = reply["node"]?["address"]?.stringValue.flatMap { try? Address(parsing: $0) }
                self.status.registered = true
                self.status.address = address
                self.status.lastError = nil
                self.backoffSeconds = 1
                self.logger.info("registered", metadata: ["address": "\(address?.description ?? "?")", "hostname": "\(self.options.hostname)"])
                if let address { self.onRegistered?(address) }
                self.startHeartbeats()
                // The endpoints changed while this registration was in flight
                // (the beacon answered meanwhile): register them too.
                if self.options.endpoints != sentEndpoints { self.register() }
            case .failure(let error):
                self.stream?.close(reason: "registration refused: \(error)", tellPeer: false)
                self.status.lastError = "registration refused: \(error)"
            }
        }
    }

    /// A beacon ticket in a reply: checked, handed on, and renewed at half
    /// its lifetime by this loop's clock (the registry's clock measured
    /// the lifetime, so skew between the two does not move renewal).
    private func took(_ reply: JSONObject) {
        guard options.wantsBeaconTicket, let text = reply["beacon_ticket"]?.stringValue else { return }
        let ticket: BeaconTicket
        do {
            ticket = try BeaconTicket(base64: text)
            guard ticket.node == identity.publicKey else { throw WireError.malformed("the ticket is for another key") }
            if let key = status.registryKey { try ticket.verify(issuer: key) }
        } catch {
            return logger.warning("ignored a malformed beacon ticket from the registry", metadata: ["error": "\(error)"])
        }
        onBeaconTicket?(ticket)
        ticketRenewal?.cancel()
        ticketRenewal = loop.assumeIsolated().scheduleTask(in: .milliseconds(max(1000, ticket.lifetimeMs / 2))) { self.renewTicket() }
    }

    private func renewTicket() {
        guard !stopped, status.registered else { return }
        send(.heartbeat, JSONObject([("beacon_ticket", .bool(true))])).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let reply): self.took(reply)
            case .failure(let error):
                // Disconnected: the next registration asks for one. Otherwise try again soon.
                guard self.status.registered else { return }
                self.logger.warning("cannot renew the beacon ticket; retrying", metadata: ["error": "\(error)"])
                if let error = error as? RegistryClientError, error.code == "not_registered" { return self.register() }
                self.ticketRenewal = self.loop.assumeIsolated().scheduleTask(in: .seconds(5)) { self.renewTicket() }
            }
        }
    }

    private func startHeartbeats() {
        heartbeatTask?.cancel()
        let interval = TimeAmount.milliseconds(options.keepaliveSeconds * 1000)
        heartbeatTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            self.send(.heartbeat, JSONObject(), signed: self.signsHeartbeats).assumeIsolated().whenFailure { error in
                guard let error = error as? RegistryClientError else { return }
                if error.code == "not_registered" {
                    self.logger.warning("the registry no longer knows this node; registering again")
                    self.register()
                } else if !self.signsHeartbeats, error.code == "bad_request", error.message.contains("must be signed") {
                    // A registry older than bare heartbeats: sign them from now on.
                    self.logger.notice("the registry wants signed heartbeats; signing them")
                    self.signsHeartbeats = true
                    self.send(.heartbeat, JSONObject(), signed: true)
                }
            }
        }
    }

    @discardableResult
    private func send(_ operation: RegistryOperation, _ body: JSONObject, signed: Bool = false) -> EventLoopFuture<JSONObject> {
        let promise = loop.makePromise(of: JSONObject.self)
        guard let stream else {
            promise.fail(RegistryClientError(code: "disconnected", message: "not connected to the registry"))
            return promise.futureResult
        }
        let id = nextID
        nextID += 1
        pending[id] = promise
        if !stream.send(RegistryProtocol.request(id: id, operation, body: body, signer: identity, now: now(), alwaysSign: signed)) {
            pending[id] = nil
            promise.fail(RegistryClientError(code: "disconnected", message: "the registry connection closed"))
        }
        return promise.futureResult
    }

    // MARK: Pinning

    static func readPin(_ path: String) -> PublicKey? {
        guard let text = try? LocalFile.readText(path, maxBytes: 1024) else { return nil }
        return try? PublicKey(base64: text.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? "")
    }
}

extension RegistryClient: SecureStreamDelegate {
    public func secureStreamEstablished(_ stream: SecureStreamHandler) {
        guard let offered = stream.remoteIdentity else { return }
        if let pinned, pinned != offered {
            diagnoseWithXX = true
            let message = "the registry at \(options.registry) offered key \(offered.fingerprint), but \(pinned.fingerprint) is pinned; refusing it. If the registry was reinstalled, delete \(options.pinPath) or run 'pilot init --registry-key KEY'"
            logger.error("registry key changed", metadata: ["pinned": "\(pinned.fingerprint)", "offered": "\(offered.fingerprint)"])
            stream.close(reason: "registry key mismatch", tellPeer: false)
            status.lastError = message
            return
        }
        if pinned == nil {
            pinned = offered
            do {
                try LocalFile.writeAtomically(options.pinPath, Array("\(offered.base64)\n".utf8), mode: 0o600)
                logger.notice("pinned the registry's key on first use", metadata: ["key": "\(offered.fingerprint)", "file": "\(options.pinPath)"])
            } catch {
                logger.error("cannot save the registry's key", metadata: ["error": "\(error)"])
            }
        }
        diagnoseWithXX = false
        status.connected = true
        status.registryKey = offered
        register()
    }

    public func secureStream(_ stream: SecureStreamHandler, received message: [UInt8]) {
        guard let json = try? JSONValue.parse(message, limits: .init(maxBytes: RegistryProtocol.maxMessageBytes, maxDepth: 8)) else {
            return stream.close(reason: "unreadable message from the registry")
        }
        if json["event"]?.stringValue == "presence", let body = json["body"],
           let address = body["address"]?.stringValue.flatMap({ try? Address(parsing: $0) }),
           let presence = body["presence"]?.stringValue.flatMap(Presence.init(rawValue:)) {
            onPresence?(PresenceEvent(address: address, hostname: body["hostname"]?.stringValue ?? "", presence: presence))
            return
        }
        guard let number = json["id"]?.int64Value, let id = UInt64(exactly: number), let promise = pending.removeValue(forKey: id) else { return }
        if json["ok"] == .bool(true) {
            promise.succeed(json["body"]?.objectValue ?? JSONObject())
        } else {
            promise.fail(RegistryClientError(code: json["code"]?.stringValue ?? "error", message: json["error"]?.stringValue ?? "request failed"))
        }
    }

    public func secureStreamClosed(_ stream: SecureStreamHandler, reason: String?) {
        guard self.stream === stream else { return }
        self.stream = nil
        if !stream.isEstablished, pinned != nil, !diagnoseWithXX { diagnoseWithXX = true }
        fail(status.lastError.flatMap { $0.contains("pinned") ? $0 : nil } ?? reason ?? "the registry closed the connection")
    }
}

public struct RegistryClientError: Error, CustomStringConvertible, Sendable {
    public let code: String
    public let message: String
    public var description: String { message }
}

extension JSONValue {
    var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }
}
