public import Logging
public import NIOCore
public import PilotCore
public import PilotCrypto
public import PilotEvents
public import PilotWire
public import PilotTransport

/// The event stream on a node (virtual port 1002): the hub's broker over
/// its durable log (`STATE/events.db`), and the client side that publishes
/// through a spool per hub (`STATE/spool-HUB.db`) and holds subscriptions
/// for the CLI. Everything runs on the tunnel loop.
public final class EventService: @unchecked Sendable {
    public struct Options: Sendable {
        public var limits = EventMessage.Limits()
        public var retention = EventLog.Retention()
        public var spool = EventSpool.Limits()
        public var queuePerSubscriber = 200_000
        public init() {}
    }

    /// Where a hub is: its key and the endpoints to try.
    public struct HubAddress: Sendable {
        public var hostname: String
        public var key: PublicKey
        public var candidates: [Endpoint]
        public init(hostname: String, key: PublicKey, candidates: [Endpoint]) {
            self.hostname = hostname
            self.key = key
            self.candidates = candidates
        }
    }

    public typealias Resolve = @Sendable (_ hub: String) async throws -> HubAddress

    /// Who a hub session belongs to: a peer over the tunnel, or a part of
    /// this process (the aggregator's own subscription and alerts).
    enum Connection: Hashable, Sendable {
        case remote(StreamMux.ConnectionID)
        case local(Int)
    }

    /// A message as an in-process subscriber gets it.
    public struct Delivery: Sendable {
        public var id: UInt64
        public var topic: Topic
        public var payload: String
        public var publisher: String
        public var sequence: UInt64
    }

    let tunnels: TunnelEndpoint
    let stateDirectory: String
    let options: Options
    let logger: Logger
    let resolve: Resolve
    var loop: any EventLoop { tunnels.loop }
    let hub: EventHub<Connection>
    private var commitScheduled = false
    /// The names this node answers to as a hub (its hostname): publishing or
    /// subscribing to itself goes straight to its own broker.
    public var selfNames: Set<String> = []
    let localName: String
    private var nextLocal = 0
    private var localSubscribers: [Int: @Sendable ([Delivery]) -> Void] = [:]
    private var forwarders: [String: Forwarder] = [:]
    private var maintenance: RepeatedTask?
    /// Set when the node stops: publications are refused from then on (on the loop).
    private var stopping = false

    public init(tunnels: TunnelEndpoint, stateDirectory: String, options: Options, logger: Logger, resolve: @escaping Resolve) throws {
        self.tunnels = tunnels
        self.stateDirectory = stateDirectory
        self.options = options
        self.logger = logger
        self.resolve = resolve
        var hubOptions = EventHub<Connection>.Options()
        hubOptions.limits = options.limits
        hubOptions.queuePerSubscriber = options.queuePerSubscriber
        do {
            hub = try EventHub(log: EventLog(path: stateDirectory + "/events.db", retention: options.retention), options: hubOptions)
        } catch {
            throw EventServiceError("cannot open the event log \(stateDirectory)/events.db: \(error)")
        }
        localName = tunnels.identity.publicKey.base64 + "/local"
        tunnels.acceptStreams(on: OverlayMessage.eventStreamPort) { [self] event in self.hubEvent(event) }
        maintenance = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in self.tick() }
    }

    // MARK: The hub (connections from peers to our port 1002)

    private func hubEvent(_ event: TunnelEndpoint.StreamServiceEvent) {
        switch event {
        case .accepted(let connection):
            hub.open(.remote(connection), peer: connection.peer.base64)
        case let .message(connection, bytes):
            hub.receive(bytes, from: .remote(connection))
            scheduleCommit()
            flush(.remote(connection))
        case .closed(let connection, _):
            hub.close(.remote(connection))
        }
    }

    /// Commits once per turn of the loop, so every publication that arrived
    /// in one burst of datagrams shares one transaction.
    private func scheduleCommit() {
        guard !commitScheduled else { return }
        commitScheduled = true
        loop.execute { [self] in
            commitScheduled = false
            guard hub.needsCommit else { return }
            do throws(EventHub<Connection>.CommitError) { try hub.commit(now: WallClock.nowMilliseconds() / 1000) } catch {
                logger.error("event hub cannot store publications; the publishers will send them again", metadata: ["error": "\(error.reason)"])
                for case .remote(let connection) in error.connections { tunnels.resetStream(connection, reason: "the hub could not store the publications") }
            }
            for connection in hub.ready { flush(connection) }
        }
    }

    /// Sends what the hub has for a connection while its stream has room;
    /// continues when acknowledgements free space.
    private func flush(_ connection: Connection) {
        switch connection {
        case .remote(let stream):
            guard tunnels.isStreamOpen(stream) else { return }
            while tunnels.queuedOnStream(stream) < 16, let frame = hub.nextFrame(for: connection) {
                tunnels.sendOnStream(frame, on: stream)
            }
            tunnels.whenStreamWritable(stream, hub.ready.contains(connection) ? { [self] in flush(connection) } : nil)
        case .local(let id):
            guard let handler = localSubscribers[id] else { return }
            while let frame = hub.nextFrame(for: connection) {
                let deliveries = Self.deliveries(in: frame)
                if !deliveries.isEmpty { handler(deliveries) }
            }
        }
    }

    static func deliveries(in frame: [UInt8]) -> [Delivery] {
        EventLines.split(frame).compactMap { line in
            guard case .message(let id, let message)? = try? EventReply.parse(line) else { return nil }
            return Delivery(id: id, topic: message.topic, payload: message.payload, publisher: message.publisher, sequence: message.sequence)
        }
    }

    // MARK: In-process publishing and subscribing (the hub's own roles)

    /// Subscribes a part of this process to its own broker. Durable ones
    /// resume after their last `acknowledge`. The handler runs on the loop.
    public func subscribeLocally(filters: [TopicFilter], durable: String?, handler: @escaping @Sendable ([Delivery]) -> Void) async -> Int {
        (try? await loop.submit { [self] () -> Int in
            nextLocal += 1
            let connection = Connection.local(nextLocal)
            localSubscribers[nextLocal] = handler
            hub.open(connection, peer: localName)
            let lines = filters.map { EventRequest.subscribe($0, durable: durable).line + "\n" }.joined()
            hub.receive(Array(lines.utf8), from: connection)
            _ = hub.nextFrame(for: connection) // the confirmations
            scheduleCommit()
            flush(connection)
            return nextLocal
        }.get()) ?? 0
    }

    /// A durable local subscriber has handled everything up to `id`.
    public func acknowledgeLocally(_ subscriber: Int, upTo id: UInt64) {
        loop.execute { [self] in
            hub.receive(Array("ACK \(id)\n".utf8), from: .local(subscriber))
            scheduleCommit()
        }
    }

    /// Publishes into this node's own broker: stored in its log with the
    /// next commit (no spool: the log is the durable copy).
    public func publishLocally(_ messages: [(topic: Topic, payload: String)]) async {
        try? await loop.submit { [self] in
            let connection = Connection.local(0)
            hub.open(connection, peer: localName)
            var lines: [UInt8] = []
            for message in messages { lines += Array(EventRequest.publish(sequence: 0, topic: message.topic, payload: message.payload).line.utf8) + [0x0A] }
            hub.receive(lines, from: connection)
            _ = hub.nextFrame(for: connection) // errors of bad lines are dropped: callers build them
            scheduleCommit()
        }.get()
    }

    private func tick() {
        for line in hub.maintain(now: WallClock.nowMilliseconds() / 1000) { logger.error("event hub: \(line)") }
        if hub.needsCommit { scheduleCommit() }
        for forwarder in forwarders.values { forwarder.tick() }
        for subscription in subscriptions.values { subscription.tick() }
    }

    // MARK: Publishing (the client side)

    /// Numbers and spools messages for `hubName` (committed before this
    /// returns), then sends them on; with `acknowledged: false` they go
    /// once, at most, without a spool.
    public func publish(to hubName: String, topic: Topic, payloads: [String], acknowledged: Bool) async throws -> Int {
        try await publish(to: hubName, messages: payloads.map { (topic, $0) }, acknowledged: acknowledged)
        return payloads.count
    }

    /// Numbers and spools messages of any topics in one transaction
    /// (committed before this returns), then sends them on; with
    /// `acknowledged: false` they go once, at most, without a spool.
    public func publish(to hubName: String, messages: [(topic: Topic, payload: String)], acknowledged: Bool = true) async throws {
        if selfNames.contains(hubName) { return await publishLocally(messages) }
        // Before the first message to a hub, find out whether it takes them
        // at all: a refusal (not trusted, no such node) is the publisher's
        // error, while a hub that is merely away gets them from the spool later.
        let outcome = try await loop.flatSubmit { [self] () -> EventLoopFuture<String?> in
            do { return try forwarder(for: hubName).firstContact() } catch { return loop.makeFailedFuture(error) }
        }.get()
        if let refusal = outcome { throw EventServiceError(refusal) }
        try await loop.submit { [self] in
            guard !stopping else { throw EventServiceError("the node is stopping") }
            let forwarder = try forwarder(for: hubName)
            if acknowledged {
                try forwarder.spool.append(messages)
            } else {
                forwarder.sendUnacknowledged(messages)
            }
            forwarder.pump()
        }.get()
    }

    private func forwarder(for hubName: String) throws -> Forwarder {
        if let existing = forwarders[hubName] { return existing }
        let path = stateDirectory + "/spool-" + hubName + ".db"
        let spool: EventSpool
        do { spool = try EventSpool(path: path, limits: options.spool) } catch {
            throw EventServiceError("cannot open the spool \(path): \(error)")
        }
        let forwarder = Forwarder(hubName: hubName, spool: spool, service: self)
        forwarders[hubName] = forwarder
        return forwarder
    }

    /// Opens the spools left by an earlier run, so their messages go out.
    public func resumeSpools() {
        loop.execute { [self] in
            let names = ((try? LocalFile.listDirectory(stateDirectory)) ?? []).compactMap { name -> String? in
                guard name.hasPrefix("spool-"), name.hasSuffix(".db") else { return nil }
                return String(name.dropFirst(6).dropLast(3))
            }
            for name in names where (try? Hostname.validate(name)) != nil {
                guard let forwarder = try? forwarder(for: name) else { continue }
                if forwarder.spool.count > 0 {
                    logger.info("sending spooled events", metadata: ["hub": "\(name)", "messages": "\(forwarder.spool.count)"])
                    forwarder.pump()
                }
            }
        }
    }

    // MARK: Subscribing

    private var subscriptions: [ObjectIdentifier: Subscription] = [:]
    fileprivate var duplicatesDiscarded = 0

    /// Serves a `subscribe` control stream: opens a connection to the hub,
    /// confirms to the CLI once the hub took every filter, then passes
    /// messages on (duplicates removed), and the CLI's acks back.
    public func subscribe(hubName: String, filters: [TopicFilter], durable: String?, stream: ControlStream) {
        if selfNames.contains(hubName) { return subscribeToSelf(filters: filters, durable: durable, stream: stream) }
        loop.execute { [self] in
            let subscription = Subscription(hubName: hubName, filters: filters, durable: durable, sink: ControlStreamSink(stream), service: self)
            subscriptions[ObjectIdentifier(subscription)] = subscription
            stream.onLine = { [weak subscription] line in
                guard line.starts(with: Array("ACK ".utf8)), let id = UInt64(String(decoding: line.dropFirst(4), as: UTF8.self)) else { return }
                subscription?.acknowledge(id)
            }
            stream.onWritable = { [weak subscription] in subscription?.writable() }
            stream.onClose = { [weak self, weak subscription] in
                self?.loop.execute {
                    guard let self, let subscription else { return }
                    subscription.stop()
                    self.subscriptions[ObjectIdentifier(subscription)] = nil
                }
            }
            subscription.connect()
        }
    }

    /// `pilot subscribe` on the hub itself: a local subscription written to
    /// the control stream (a reader that falls behind loses messages, told
    /// by `DROP n`, unless durable: then it resumes after its last ack).
    private func subscribeToSelf(filters: [TopicFilter], durable: String?, stream: ControlStream) {
        final class Dropped: @unchecked Sendable { var count = 0 }
        let dropped = Dropped()
        Task {
            let id = await subscribeLocally(filters: filters, durable: durable) { deliveries in
                guard stream.isWritable || durable != nil else {
                    dropped.count += deliveries.count
                    return
                }
                var out: [UInt8] = []
                if dropped.count > 0 {
                    out += Array(EventReply.dropped(dropped.count).line.utf8) + [0x0A]
                    dropped.count = 0
                }
                for delivery in deliveries {
                    let message = EventMessage(topic: delivery.topic, payload: delivery.payload, publisher: delivery.publisher, sequence: delivery.sequence)
                    out += EventReply.messageBytes(id: delivery.id, message) + [0x0A]
                }
                stream.send(out)
            }
            loop.execute { [self] in
                stream.send(ControlSocket.ok(JSONObject([("hub", .string("self"))])))
                stream.onLine = { [weak self] line in
                    guard durable != nil, line.starts(with: Array("ACK ".utf8)), let upTo = UInt64(String(decoding: line.dropFirst(4), as: UTF8.self)) else { return }
                    self?.acknowledgeLocally(id, upTo: upTo)
                }
                stream.onClose = { [weak self] in
                    self?.loop.execute {
                        self?.hub.close(.local(id))
                        self?.localSubscribers[id] = nil
                    }
                }
                if stream.isClosed {
                    hub.close(.local(id))
                    localSubscribers[id] = nil
                }
            }
        }
    }

    /// A part of this process subscribing to a hub elsewhere (the store):
    /// reconnects by itself; a durable one resumes after `acknowledge`.
    /// Returns once the hub confirmed, or throws its refusal.
    public func subscribe(hubName: String, filters: [TopicFilter], durable: String?,
                          handler: @escaping @Sendable ([Delivery]) -> Void) async throws -> RemoteSubscription {
        if selfNames.contains(hubName) {
            // This node is the hub (pilot up): its own broker, in process.
            let id = await subscribeLocally(filters: filters, durable: durable, handler: handler)
            return RemoteSubscription(acknowledge: { [weak self] upTo in self?.acknowledgeLocally(id, upTo: upTo) }, stop: { [weak self] in
                try? await self?.loop.submit {
                    guard let self else { return }
                    self.hub.close(.local(id))
                    self.localSubscribers[id] = nil
                }.get()
            })
        }
        final class Outcome: @unchecked Sendable { var promise: EventLoopPromise<Void>? }
        let outcome = Outcome()
        let promise = loop.makePromise(of: Void.self)
        outcome.promise = promise
        let sink = HandlerSink(handler: handler) { [loop] failure in
            loop.execute {
                guard let waiting = outcome.promise else { return }
                outcome.promise = nil
                if let failure { waiting.fail(EventServiceError(failure)) } else { waiting.succeed(()) }
            }
        }
        let subscription = try await loop.submit { [self] () -> Subscription in
            let subscription = Subscription(hubName: hubName, filters: filters, durable: durable, sink: sink, service: self)
            subscriptions[ObjectIdentifier(subscription)] = subscription
            subscription.connect()
            return subscription
        }.get()
        try await promise.futureResult.get()
        return RemoteSubscription(acknowledge: { [loop] upTo in loop.execute { subscription.acknowledge(upTo) } },
                                  stop: { [weak self] in await self?.finish(subscription) })
    }

    // MARK: Stopping

    /// Ends a subscription once what it sent (its last acknowledgement)
    /// has reached the hub, so a durable one resumes exactly after it.
    private func finish(_ subscription: Subscription) async {
        while let busy = try? await loop.submit({ [self] in subscription.connection.map { !tunnels.isStreamIdle($0) } ?? false }).get(), busy {
            do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
        }
        try? await loop.submit { [self] in
            subscription.stop()
            subscriptions[ObjectIdentifier(subscription)] = nil
        }.get()
    }

    /// Stops the event service as the node stops: no more publications;
    /// subscriptions end after their acknowledgements reached the hub;
    /// each forwarder connected to its hub waits until the hub has
    /// acknowledged everything it spooled (one whose hub is away keeps its
    /// spool for the next start); the broker commits what it holds. Waits
    /// as long as that takes: the daemon's shutdown bound decides, and
    /// `progress` says what is still waited for.
    public func shutdown(progress: ShutdownProgress) async {
        let open = (try? await loop.submit { [self] () -> [Subscription] in
            stopping = true
            return Array(subscriptions.values)
        }.get()) ?? []
        if !open.isEmpty { progress.waiting("node", "ending \(open.count) subscriptions") }
        for subscription in open { await finish(subscription) }
        while true {
            let draining = (try? await loop.submit { [self] in
                forwarders.values.filter { $0.connection != nil && $0.spool.count > 0 }.map { "\($0.hubName) to acknowledge \($0.spool.count) spooled messages" }
            }.get()) ?? []
            guard !draining.isEmpty else { break }
            progress.waiting("node", "waiting for " + draining.sorted().joined(separator: ", "))
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        progress.waiting("node", "committing the event log")
        try? await loop.submit { [self] in
            maintenance?.cancel()
            for (name, forwarder) in forwarders where forwarder.spool.count > 0 {
                logger.notice("messages stay spooled for the next start", metadata: ["hub": "\(name)", "messages": "\(forwarder.spool.count)"])
            }
            guard hub.needsCommit else { return }
            do throws(EventHub<Connection>.CommitError) { try hub.commit(now: WallClock.nowMilliseconds() / 1000) } catch {
                logger.error("event hub cannot store publications; the publishers will send them again", metadata: ["error": "\(error.reason)"])
            }
        }.get()
    }

    // MARK: Status

    public func status() async -> JSONObject {
        (try? await loop.submit { [self] () -> JSONObject in
            let s = hub.statistics
            var spools: [JSONValue] = []
            for (name, forwarder) in forwarders.sorted(by: { $0.key < $1.key }) {
                let transport = forwarder.connection.flatMap { tunnels.streamStatistics($0) }
                spools.append(.object(JSONObject([
                    ("segments", .number(Double(transport?.segmentsSent ?? 0))), ("retransmissions", .number(Double(transport?.retransmissions ?? 0))),
                    ("timeouts", .number(Double(transport?.timeouts ?? 0))),
                    ("hub", .string(name)), ("connected", .bool(forwarder.connection != nil)),
                    ("spooled", .number(Double(forwarder.spool.count))), ("acknowledged", .number(Double(forwarder.spool.acknowledged))),
                    ("published", .number(Double(forwarder.spool.lastSequence))), ("resent", .number(Double(forwarder.resent))),
                    ("refused", .number(Double(forwarder.refused))), ("last_error", forwarder.lastError.map { .string($0) } ?? .null),
                ])))
            }
            return JSONObject([
                ("hub", .object(JSONObject([
                    ("connections", .number(Double(hub.connections))), ("stored", .number(Double(s.stored))),
                    ("log_messages", .number(Double(hub.log.count))), ("log_bytes", .number(Double(hub.log.storedBytes))),
                    ("duplicates", .number(Double(s.duplicates))), ("refused", .number(Double(s.refused))),
                    ("delivered", .number(Double(s.delivered))), ("replayed", .number(Double(s.replayed))),
                    ("dropped_slow", .number(Double(s.droppedSlow))), ("dropped_retention", .number(Double(s.droppedRetention))),
                    ("durable", .object(JSONObject(hub.durableNames.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
                ]))),
                ("spools", .array(spools)),
                ("subscriptions", .number(Double(subscriptions.count))),
                ("duplicates_discarded", .number(Double(duplicatesDiscarded))),
            ])
        }.get()) ?? JSONObject()
    }

    /// Opens a stream to a hub's port 1002 (found at the registry); the
    /// stream's messages go to `received`, the outcome to `completion`, both
    /// on the loop. Shared by the forwarders and the subscriptions.
    func connectToHub(_ hubName: String, received: @escaping @Sendable (Result<[UInt8], any Error>) -> Void,
                      completion: @escaping @Sendable (Result<StreamMux.ConnectionID, any Error>) -> Void) {
        Task { [self] in
            do {
                let address = try await resolve(hubName)
                let connection = try await tunnels.connectStream(to: address.key, candidates: address.candidates,
                                                                 port: OverlayMessage.eventStreamPort, handler: received)
                loop.execute { completion(.success(connection)) }
            } catch {
                loop.execute { completion(.failure(error)) }
            }
        }
    }

    /// Whether a failure to reach a hub is its answer (it will not change
    /// by retrying) rather than its absence.
    static func isRefusal(_ error: any Error) -> Bool {
        switch error {
        case TunnelError.reset(let reason): reason.hasPrefix("not trusted for port") || reason.hasSuffix("is closed")
        case is EventServiceError: true
        case let registry as RegistryClientError: registry.code == "not_found"
        default: false
        }
    }

    /// The message a peer's refusal becomes for the user.
    static func explain(_ error: any Error, hub: String) -> String {
        let text = "\(error)"
        if text.contains("not trusted for port") {
            return "the hub \(hub) does not trust this node; ask it with 'pilot handshake \(hub) \"why\"' and have it approved"
        }
        if text.contains("port \(OverlayMessage.eventStreamPort) is closed") { return "\(hub) runs no event broker" }
        return "cannot reach the hub \(hub): \(text)"
    }
}

/// Sends one hub's spool: in order, many lines to a stream message, a
/// bounded amount unacknowledged, again from the oldest after a reconnect.
final class Forwarder: @unchecked Sendable {
    let hubName: String
    let spool: EventSpool
    unowned let service: EventService
    var connection: StreamMux.ConnectionID?
    var connecting = false
    /// The highest sequence sent on the current connection.
    var sentUpTo: UInt64 = 0
    /// The highest sequence ever sent (to count resends).
    var highestSent: UInt64 = 0
    var resent = 0
    var refused = 0
    var lastError: String?
    var retryAt: Int64 = 0
    var backoff: Int64 = 500_000
    /// Fire-and-forget lines waiting for the connection (bounded).
    var unacknowledged: [String] = []
    /// Whether the hub ever answered (accepted or refused) in this run.
    var contacted = false
    var refusal: String?
    var contactWaiters: [EventLoopPromise<String?>] = []

    init(hubName: String, spool: EventSpool, service: EventService) {
        self.hubName = hubName
        self.spool = spool
        self.service = service
        sentUpTo = spool.acknowledged
        highestSent = spool.acknowledged // resends count from this run only
    }

    func sendUnacknowledged(_ messages: [(topic: Topic, payload: String)]) {
        for message in messages where unacknowledged.count < 10_000 {
            unacknowledged.append(EventRequest.publish(sequence: 0, topic: message.topic, payload: message.payload).line)
        }
    }

    func tick() {
        if connection == nil, spool.count > 0 || !unacknowledged.isEmpty { pump() }
    }

    /// Resolves once the first connection attempt is decided: nil when the
    /// hub accepted or could not be reached (the spool will wait for it),
    /// else the refusal. Later calls answer from what is known.
    func firstContact() -> EventLoopFuture<String?> {
        let loop = service.loop
        if connection != nil || (contacted && refusal == nil) { return loop.makeSucceededFuture(nil) }
        let promise = loop.makePromise(of: String?.self)
        contactWaiters.append(promise)
        if contactWaiters.count == 1 {
            connect(force: true)
            loop.scheduleTask(in: .seconds(5)) { [self] in self.settleContact(nil) } // away: spool and go on
        }
        return promise.futureResult
    }

    private func settleContact(_ refusal: String?) {
        let waiters = contactWaiters
        contactWaiters = []
        for waiter in waiters { waiter.succeed(refusal) }
    }

    func pump() {
        guard let connection else { return connect() }
        let tunnels = service.tunnels
        if !unacknowledged.isEmpty {
            for frame in EventLines.pack(unacknowledged) { tunnels.sendOnStream(frame, on: connection) }
            unacknowledged = []
        }
        while sentUpTo < spool.lastSequence, tunnels.queuedOnStream(connection) < 16, sentUpTo - spool.acknowledged < 20_000 {
            guard let batch = try? spool.pendingFrames(after: sentUpTo, limit: 2_000), batch.count > 0 else { break }
            if highestSent > sentUpTo { resent += Int(min(highestSent, batch.last) - sentUpTo) }
            for frame in batch.frames { tunnels.sendOnStream(frame, on: connection) }
            sentUpTo = batch.last
            highestSent = max(highestSent, sentUpTo)
        }
        tunnels.whenStreamWritable(connection, sentUpTo < spool.lastSequence ? { [weak self] in self?.pump() } : nil)
    }

    private func connect(force: Bool = false) {
        let now = TunnelTime.current().now
        guard !connecting, force || now >= retryAt else { return }
        connecting = true
        let hubName = self.hubName
        service.connectToHub(hubName, received: { [weak self] result in self?.received(result) }) { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.failed(EventService.explain(error, hub: hubName), refused: EventService.isRefusal(error))
            }
        }
    }

    private func connected(_ connection: StreamMux.ConnectionID) {
        connecting = false
        self.connection = connection
        // The hub's refusal of an untrusted node comes as a reset of this
        // connection: the first acknowledgement (or a PONG) settles it.
        service.tunnels.sendOnStream(Array("PING\n".utf8), on: connection)
        backoff = 500_000
        sentUpTo = spool.acknowledged
        service.tunnels.sendOnStream(Array((EventRequest.epoch(spool.epoch).line + "\n").utf8), on: connection)
        pump()
    }

    private func failed(_ reason: String, refused: Bool) {
        connecting = false
        connection = nil
        if refused {
            contacted = true
            refusal = reason
            settleContact(reason)
        }
        if lastError != reason { service.logger.warning("event hub unreachable; publications stay spooled", metadata: ["hub": "\(hubName)", "reason": "\(reason)"]) }
        lastError = reason
        retryAt = TunnelTime.current().now + backoff
        backoff = min(backoff * 2, 5_000_000)
    }

    private func received(_ result: Result<[UInt8], any Error>) {
        switch result {
        case .failure(TunnelError.reset("idle timeout")) where spool.count == 0:
            connection = nil // quiet for two minutes: reconnect when there is something to send
        case .failure(let error):
            failed(EventService.explain(error, hub: hubName), refused: EventService.isRefusal(error))
        case .success(let bytes):
            if !contacted {
                contacted = true
                refusal = nil
                settleContact(nil)
            }
            for line in EventLines.split(bytes) {
                switch try? EventReply.parse(line) {
                case .published(let upTo)?:
                    do { try spool.acknowledge(upTo: upTo) } catch {
                        service.logger.error("cannot update the spool", metadata: ["error": "\(error)"])
                    }
                    lastError = nil
                case let .error(sequence, reason)?:
                    refused += 1
                    service.logger.error("the hub refused a publication", metadata: ["hub": "\(hubName)", "seq": "\(sequence)", "reason": "\(reason)"])
                default:
                    break
                }
            }
            pump()
        }
    }
}

/// Where a subscription's messages go: a CLI's control stream, or a part
/// of this process (the store). Called on the loop.
protocol SubscriptionSink: AnyObject, Sendable {
    var isWritable: Bool { get }
    func confirmed(hub: String)
    /// The first connection failed: the end of this subscription.
    func failed(_ reason: String)
    /// `MSG` (and `DROP`) lines, each ending in a line feed.
    func deliver(_ lines: [UInt8])
}

final class ControlStreamSink: SubscriptionSink, @unchecked Sendable {
    let stream: ControlStream
    init(_ stream: ControlStream) { self.stream = stream }
    var isWritable: Bool { stream.isWritable }
    func confirmed(hub: String) { stream.send(ControlSocket.ok(JSONObject([("hub", .string(hub))]))) }
    func failed(_ reason: String) {
        stream.send(ControlSocket.failure(reason))
        stream.close()
    }
    func deliver(_ lines: [UInt8]) { stream.send(lines) }
}

final class HandlerSink: SubscriptionSink, @unchecked Sendable {
    let handler: @Sendable ([EventService.Delivery]) -> Void
    let onStatus: @Sendable (String?) -> Void
    init(handler: @escaping @Sendable ([EventService.Delivery]) -> Void, onStatus: @escaping @Sendable (String?) -> Void) {
        self.handler = handler
        self.onStatus = onStatus
    }
    var isWritable: Bool { true }
    func confirmed(hub: String) { onStatus(nil) }
    func failed(_ reason: String) { onStatus(reason) }
    func deliver(_ lines: [UInt8]) {
        let deliveries = EventService.deliveries(in: lines)
        if !deliveries.isEmpty { handler(deliveries) }
    }
}

/// One `pilot subscribe`: a connection to the hub on behalf of a control
/// stream, reconnected after failures (a durable one resumes where the CLI
/// acknowledged).
final class Subscription: @unchecked Sendable {
    let hubName: String
    let filters: [TopicFilter]
    let durable: String?
    let sink: any SubscriptionSink
    unowned let service: EventService
    var connection: StreamMux.ConnectionID?
    var connecting = false
    var confirmed = false
    var confirmedFilters: Set<TopicFilter> = []
    var stopped = false
    var duplicates = DuplicateFilter()
    var retryAt: Int64 = 0
    var lastPing: Int64 = 0
    var lastHeard: Int64 = 0
    /// Plain subscribers: messages dropped here while the CLI was not reading.
    var droppedHere = 0

    init(hubName: String, filters: [TopicFilter], durable: String?, sink: any SubscriptionSink, service: EventService) {
        self.hubName = hubName
        self.filters = filters
        self.durable = durable
        self.sink = sink
        self.service = service
    }

    func connect() {
        guard !stopped, !connecting, connection == nil else { return }
        connecting = true
        let hubName = self.hubName
        service.connectToHub(hubName, received: { [weak self] result in self?.received(result) }) { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.failed(EventService.explain(error, hub: hubName))
            }
        }
    }

    private func connected(_ connection: StreamMux.ConnectionID) {
        connecting = false
        guard !stopped else { return service.tunnels.resetStream(connection, reason: "subscriber gone") }
        self.connection = connection
        confirmedFilters = []
        lastPing = TunnelTime.current().now
        let lines = filters.map { EventRequest.subscribe($0, durable: durable).line + "\n" }.joined()
        service.tunnels.sendOnStream(Array(lines.utf8), on: connection)
    }

    private func failed(_ reason: String) {
        connecting = false
        connection = nil
        if !confirmed {
            // The first attempt failed: tell the CLI, which says so and exits.
            stop()
            sink.failed(reason)
            return
        }
        service.logger.info("subscription to the hub lost; reconnecting", metadata: ["hub": "\(hubName)", "reason": "\(reason)"])
        retryAt = TunnelTime.current().now + 1_000_000
    }

    func tick() {
        let now = TunnelTime.current().now
        if connection == nil, confirmed, sink.isWritable, now >= retryAt { connect() }
        // Quiet connections are probed every 2 s, so a hub that restarted
        // (and forgot the connection) answers with a reset within seconds.
        if let connection, now - lastPing >= 2_000_000, now - lastHeard >= 2_000_000 {
            lastPing = now
            service.tunnels.sendOnStream(Array("PING\n".utf8), on: connection)
        }
    }

    private func received(_ result: Result<[UInt8], any Error>) {
        guard !stopped else { return }
        switch result {
        case .failure(let error):
            failed(EventService.explain(error, hub: hubName))
        case .success(let bytes):
            lastHeard = TunnelTime.current().now
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
                let line = bytes[start..<end]
                start = end + 1
                if line.isEmpty { continue }
                if line.starts(with: Self.messagePrefix) {
                    guard let (publisher, sequence) = Self.identity(of: line) else { continue }
                    if sequence > 0, !duplicates.isNew(publisher: publisher, sequence: sequence) {
                        service.duplicatesDiscarded += 1
                        continue
                    }
                    out.append(contentsOf: line)
                    out.append(0x0A)
                    continue
                }
                switch try? EventReply.parse(line) {
                case .subscribed(let filter)?:
                    confirmedFilters.insert(filter)
                    if !confirmed, confirmedFilters.count == Set(filters).count {
                        confirmed = true
                        sink.confirmed(hub: hubName)
                    }
                case let .error(_, reason)?:
                    if !confirmed {
                        failed(reason)
                        if let connection { service.tunnels.resetStream(connection, reason: "refused") }
                        return
                    }
                    service.logger.warning("the hub reports", metadata: ["hub": "\(hubName)", "error": "\(reason)"])
                case .dropped(let count)?:
                    out.append(contentsOf: Array(EventReply.dropped(count).line.utf8))
                    out.append(0x0A)
                default:
                    break
                }
            }
            guard !out.isEmpty else { return }
            if sink.isWritable {
                sink.deliver(out)
            } else if durable != nil {
                // The CLI is not keeping up: let the hub keep the rest (it resumes from the CLI's last ack).
                sink.deliver(out)
                pause()
            } else {
                let count = out.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                droppedHere += count
            }
        }
    }

    private func pause() {
        guard let connection else { return }
        service.tunnels.resetStream(connection, reason: "subscriber busy")
        self.connection = nil
        retryAt = TunnelTime.current().now + 200_000
    }

    func writable() {
        if droppedHere > 0 {
            sink.deliver(Array((EventReply.dropped(droppedHere).line + "\n").utf8))
            droppedHere = 0
        }
        if connection == nil, confirmed { connect() }
    }

    /// The consumer has everything up to `id` (durable subscriptions).
    func acknowledge(_ id: UInt64) {
        guard let connection, durable != nil else { return }
        service.tunnels.sendOnStream(Array("ACK \(id)\n".utf8), on: connection)
    }

    func stop() {
        stopped = true
        if let connection { service.tunnels.resetStream(connection, reason: "subscriber gone") }
        connection = nil
    }

    static let messagePrefix = Array("MSG ".utf8)

    /// (publisher, sequence) of a `MSG id publisher seq topic payload` line,
    /// read without parsing the rest.
    static func identity(of line: ArraySlice<UInt8>) -> (String, UInt64)? {
        guard let idEnd = line[(line.startIndex + 4)...].firstIndex(of: 0x20),
              let publisherEnd = line[(idEnd + 1)...].firstIndex(of: 0x20),
              let sequenceEnd = line[(publisherEnd + 1)...].firstIndex(of: 0x20) else { return nil }
        var sequence: UInt64 = 0
        for byte in line[(publisherEnd + 1)..<sequenceEnd] {
            let digit = byte &- 0x30
            guard digit < 10, sequence < UInt64.max / 10 - 1 else { return nil }
            sequence = sequence * 10 + UInt64(digit)
        }
        guard sequenceEnd > publisherEnd + 1 else { return nil }
        return (String(decoding: line[(idEnd + 1)..<publisherEnd], as: UTF8.self), sequence)
    }
}

public struct EventServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A subscription held by a part of this process.
public final class RemoteSubscription: @unchecked Sendable {
    private let acknowledgeHandler: @Sendable (UInt64) -> Void
    private let stopHandler: @Sendable () async -> Void
    init(acknowledge: @escaping @Sendable (UInt64) -> Void, stop: @escaping @Sendable () async -> Void) {
        acknowledgeHandler = acknowledge
        stopHandler = stop
    }

    /// Everything up to `id` is handled (stored): the hub may forget it.
    public func acknowledge(upTo id: UInt64) { acknowledgeHandler(id) }

    /// Ends the subscription once the last acknowledgement is delivered.
    public func stop() async { await stopHandler() }
}
