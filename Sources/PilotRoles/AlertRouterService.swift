internal import AsyncHTTPClient
public import Logging
public import NIOCore
public import PilotAlerts
public import PilotCore
public import PilotNode
internal import PilotRegistry
internal import PilotTransport

/// `pilot alert-router`: a durable subscriber (`alert-router`) to
/// `alerts/*` at the hub that turns alerts into notifications a person
/// reads. Routing, grouping, inhibition and silences are `RouterCore`'s;
/// this shell feeds it, keeps its state and the outbox in `STATE/router.db`
/// (acknowledging an alert to the hub only once committed there), and
/// delivers each receiver's notifications in order with retries.
/// Everything but the sends themselves runs on the node's loop.
public final class AlertRouterService: NodeRole, @unchecked Sendable {
    public struct Options: Sendable {
        public var receivers: [ReceiverSpec] = []
        public var routes: [Route] = []
        public var groupBy: [String] = ["alertname"]
        public var timing = RouterCore.Timing()
        public var lane = DeliveryLane.Options()
        /// The dashboard's base URL, for links in notifications.
        public var externalURL: String?
        public var heartbeatURL: String?
        public var heartbeatSeconds: Int64 = 60
        public init() {}
    }

    public let name = "alert-router"
    let options: Options
    let logger: Logger
    let receivers: [ResolvedReceiver]
    let outbox: RouterOutbox
    var core: RouterCore
    private var node: Node!
    var loop: any EventLoop { node.loop }
    var client: HTTPClient!
    var senders: [String: AlertSender] = [:]
    var lanes: [String: LaneState] = [:]
    private var subscription: RemoteSubscription?
    var subscriptionIsLive: Bool { subscription?.isLive ?? false }
    private var subscribing: Task<Void, Never>?
    private var timers: [RepeatedTask] = []
    private var directoryPoll: Task<Void, Never>?
    /// Tags per host, from the registry, for `tag:` routes and silences.
    private var tags: [String: [String]] = [:]
    var stopped = false
    private(set) var invalidAlerts = 0
    var heartbeat = Heartbeat()

    struct Heartbeat {
        var sent = 0, failed = 0
        var lastError: String?
        var lastAt: Int64?
        var inFlight = false
    }

    /// Reads every receiver's secrets and opens `STATE/router.db`, restoring
    /// the groups, silences and outbox a previous run left.
    public init(options: Options, stateDirectory: String, environment: @escaping (String) -> String?, logger: Logger) throws {
        self.options = options
        self.logger = logger
        var resolved: [ResolvedReceiver] = []
        for spec in options.receivers {
            guard !resolved.contains(where: { $0.spec.name == spec.name }) else {
                throw ParseError("receiver", "\(spec.kind.rawValue):\(spec.name)", "the name \(spec.name) is used twice")
            }
            resolved.append(try ResolvedReceiver(spec, environment: environment))
        }
        receivers = resolved
        let table = try RoutingTable(routes: options.routes, receivers: resolved.map(\.spec.name))
        var config = RouterCore.Config(table: table, receivers: resolved.map { receiver in
            RouterCore.Receiver(name: receiver.spec.name, sendResolved: receiver.spec.sendResolved,
                                resend: receiver.spec.kind == .alertmanager ? receiver.spec.duration("resend", default: 60) : nil)
        })
        config.groupBy = options.groupBy
        config.timing = options.timing
        let path = stateDirectory + "/router.db"
        do {
            outbox = try RouterOutbox(path: path)
            let prefix: String
            if let kept = try outbox.meta("id_prefix") {
                prefix = kept
            } else {
                var random = SystemRandomNumberGenerator()
                prefix = String(random.next() & 0xFFFF_FFFF, radix: 16)
                try outbox.setMeta("id_prefix", prefix)
            }
            if let snapshot = try outbox.snapshot() {
                core = try RouterCore(config: config, idPrefix: prefix, restoring: snapshot)
            } else {
                core = RouterCore(config: config, idPrefix: prefix)
            }
        } catch let error as ParseError {
            throw EventServiceError("\(path): \(error)")
        } catch {
            throw EventServiceError("cannot open the router's state \(path): \(error)")
        }
    }

    public func register(_ requests: inout ControlRequests) {
        requests.answer(SilenceRequest.self) { [unowned self] request in try await silence(request) }
        requests.answer(RouterTestRequest.self) { [unowned self] request in try await test(request.receiver) }
    }

    public func start(on node: Node) async throws {
        self.node = node
        // A receiver that is down should fail fast and be retried by the
        // lane, not by the client's own connect loop (10 s by default).
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(3)
        client = HTTPClient(eventLoopGroup: node.group, configuration: configuration)
        let context = FormatContext(externalURL: options.externalURL, sender: node.options.hostname)
        for (index, receiver) in receivers.enumerated() {
            senders[receiver.spec.name] = AlertSender(receiver: receiver, context: context, client: client, group: node.group)
            var lane = options.lane
            if let rate = receiver.spec.rate {
                lane.rateCount = rate.count
                lane.ratePerSeconds = rate.perSeconds
            }
            lanes[receiver.spec.name] = LaneState(lane: DeliveryLane(options: lane, seed: UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(UInt(bitPattern: ObjectIdentifier(self).hashValue))))
        }
        for receiver in receivers {
            for what in receiver.spec.inlineSecrets {
                logger.warning("\(what) is written inline, so ps shows it to every local user: use @FILE or env:NAME")
            }
        }
        guard let events = node.events else { throw EventServiceError("the node's event service did not start") }
        guard let hub = node.options.hub else { throw EventServiceError("no hub configured: pilot init --hub NAME") }
        try await loop.submit { [self] in
            timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in tick() })
            timers.append(loop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .seconds(30)) { [self] _ in pollDirectory() })
            if options.heartbeatURL != nil {
                timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(options.heartbeatSeconds), delay: .seconds(options.heartbeatSeconds)) { [self] _ in
                    beat()
                })
            }
            for receiver in receivers { pump(receiver.spec.name) } // a backlog from before a restart
        }.get()
        let filters = [try TopicFilter("alerts/*")]
        subscribing = Task { [self] in
            while !Task.isCancelled {
                do {
                    let subscription = try await events.subscribe(hubName: hub, filters: filters, durable: "alert-router") { [self] deliveries in
                        received(deliveries)
                    }
                    try? await loop.submit { self.subscription = subscription }.get()
                    break
                } catch {
                    logger.warning("cannot subscribe at the hub yet; retrying", metadata: ["hub": "\(hub)", "error": "\(error)"])
                    try? await Task.sleep(for: .seconds(2))
                }
            }
            guard !Task.isCancelled else { return }
            logger.info("alert router subscribed", metadata: [
                "hub": "\(hub)", "receivers": "\(receivers.map { "\($0.spec.kind.rawValue):\($0.spec.name)" }.joined(separator: ", "))",
                "routes": "\(options.routes.map(\.description).joined(separator: "; "))", "queued": "\(outbox.totalDepth)",
            ])
        }
    }

    /// Stops taking alerts (what arrives now stays at the hub), lets the
    /// sends in flight finish, and closes the HTTP client. What waits in the
    /// outbox goes out at the next start.
    public func stop() async {
        guard let node else { return }
        let poll = try? await node.loop.submit { [self] () -> Task<Void, Never>? in
            stopped = true
            for timer in timers { timer.cancel() }
            timers = []
            for lane in lanes.values { lane.wake?.cancel() }
            return directoryPoll
        }.get()
        subscribing?.cancel()
        await subscribing?.value
        await poll?.value
        let subscription = try? await node.loop.submit { self.subscription }.get()
        await subscription?.stop()
        // Sends in flight get 5 s, well inside the daemon's 10 s bound; one
        // cut short stays in the outbox and goes again (same id) at the next start.
        for _ in 0..<50 {
            guard (try? await node.loop.submit { self.lanes.values.contains { $0.inFlight } || self.heartbeat.inFlight }.get()) == true else { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        try? await client?.shutdown()
    }

    static func now() -> Int64 { WallClock.nowMilliseconds() / 1000 }

    // MARK: On the loop

    private func received(_ deliveries: [EventService.Delivery]) {
        guard !stopped else { return }
        let now = Self.now()
        var made: [PilotAlerts.Notification] = []
        for delivery in deliveries {
            guard let payload = delivery.object else { continue }
            do {
                let alert = try AlertEvent(topic: delivery.topic.description, payload: payload)
                made += core.receive(alert, tags: tags[alert.host] ?? [], now: now)
            } catch {
                invalidAlerts += 1
                if invalidAlerts <= 10 || invalidAlerts % 1000 == 0 {
                    logger.warning("an alert the router cannot read is skipped", metadata: ["error": "\(error)", "skipped": "\(invalidAlerts)"])
                }
            }
        }
        // Committed first, acknowledged after: a crash in between replays
        // alerts the router already holds, which changes nothing.
        guard commit(made, now: now) else { return }
        if let last = deliveries.last { subscription?.acknowledge(upTo: last.id) }
        for name in Set(made.map(\.receiver)) { pump(name) }
        // A group due now (group_wait 0) goes out now, not at the next tick.
        if let due = core.nextDue, due <= now { tick() }
    }

    private func tick() {
        let now = Self.now()
        let tags = self.tags
        let made = core.tick(now: now) { tags[$0] ?? [] }
        guard !made.isEmpty, commit(made, now: now) else { return }
        for name in Set(made.map(\.receiver)) { pump(name) }
    }

    /// The core's state and its new notifications in one transaction.
    @discardableResult
    func commit(_ made: [PilotAlerts.Notification], now: Int64) -> Bool {
        let changes = core.takeChanges()
        do {
            try outbox.commit(changes, notifications: made, now: now)
            for notification in made {
                logger.info("notification queued", metadata: [
                    "id": "\(notification.id)", "receiver": "\(notification.receiver)", "status": "\(notification.status.rawValue)",
                    "alerts": "\(notification.alerts.count)", "group": "\(notification.groupKey)",
                ])
            }
            return true
        } catch {
            core.keep(changes)
            logger.error("cannot save the router's state; the alerts stay at the hub", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func pollDirectory() {
        guard directoryPoll == nil, let registry = node.registry else { return }
        directoryPoll = Task {
            let nodes = try? await registry.search("")
            var found: [String: [String]] = [:]
            for view in (nodes ?? []).compactMap({ try? RegistryProtocol.nodeView($0) }) { found[view.record.hostname] = view.record.tags }
            loop.execute { [self] in
                if nodes != nil { tags = found }
                directoryPoll = nil
            }
        }
    }

    // MARK: Silences and tests

    private func silence(_ request: SilenceRequest) async throws -> JSONObject {
        let now = Self.now()
        return try await loop.submit { [self] () throws -> JSONObject in
            switch request.action {
            case .add(let matchers, let seconds, let comment, let by):
                var random = SystemRandomNumberGenerator()
                let id = String(random.next() & 0xFFFF_FFFF_FFFF, radix: 16)
                let silence = Silence(id: id, matchers: matchers, startsAt: now, endsAt: now + seconds, comment: comment, createdBy: by)
                core.addSilence(silence)
                guard commit([], now: now) else { throw EventServiceError("cannot save the silence") }
                logger.notice("silence added", metadata: ["id": "\(id)", "matchers": "\(matchers.map(\.description).joined(separator: " "))",
                                                          "ends_at": "\(silence.endsAt)", "comment": "\(comment)"])
                return JSONObject([("silence", .object(silence.record))])
            case .list:
                let list = core.silences.values.sorted { ($0.endsAt, $0.id) < ($1.endsAt, $1.id) }.map { silence -> JSONValue in
                    var record = silence.record
                    record["active"] = .bool(silence.isActive(at: now))
                    return .object(record)
                }
                return JSONObject([("silences", .array(list))])
            case .expire(let id):
                guard core.expireSilence(id, now: now) else { throw EventServiceError("no silence has the id \(id) (see pilot silence list)") }
                guard commit([], now: now) else { throw EventServiceError("cannot save the silence") }
                logger.notice("silence expired", metadata: ["id": "\(id)"])
                return JSONObject([("expired", .string(id))])
            }
        }.get()
    }

    /// One test notification, sent now outside the outbox; the receiver's answer comes back.
    private func test(_ receiver: String) async throws -> JSONObject {
        let made = try await loop.submit { [self] () throws -> (AlertSender, PilotAlerts.Notification) in
            guard let sender = senders[receiver] else {
                throw EventServiceError("no receiver is named \(receiver) (receivers: \(receivers.map(\.spec.name).joined(separator: ", ")))")
            }
            let notification = core.testNotification(receiver: receiver, now: Self.now())
            commit([], now: Self.now()) // the id counter moved
            return (sender, notification)
        }.get()
        let (outcome, _, answer) = await made.0.send(made.1, progress: 0, now: Self.now())
        return JSONObject([("receiver", .string(receiver)), ("delivered", .bool(outcome == .delivered)), ("answer", .string(answer)),
                           ("id", .string(made.1.id))])
    }

    // MARK: Status

    public func statusSection() async -> JSONValue? {
        (try? await loop.submit { self.section() }.get()) ?? .null
    }

    private func section() -> JSONValue {
        let nowMs = WallClock.nowMilliseconds()
        let list: [JSONValue] = receivers.map { receiver in
            let name = receiver.spec.name
            let counts = outbox.counters[name] ?? RouterOutbox.Counters()
            var entry = JSONObject([
                ("name", .string(name)), ("kind", .string(receiver.spec.kind.rawValue)), ("target", .string(receiver.spec.targetDescription)),
                ("queued", .number(Double(outbox.depth(name)))), ("delivered", .number(Double(counts.delivered))),
                ("retried", .number(Double(counts.retried))), ("failed", .number(Double(counts.failed))),
                ("last_error", counts.lastError.map { .string($0) } ?? .null),
            ])
            if let lane = lanes[name], lane.retryAt > nowMs { entry["next_attempt_ms"] = .number(Double(lane.retryAt - nowMs)) }
            return .object(entry)
        }
        var section = JSONObject([
            ("receivers", .array(list)), ("routes", .array(options.routes.map { .string($0.description) })),
            ("groups", .number(Double(core.groupCount))), ("pending_alerts", .number(Double(core.pendingAlerts))),
            ("silences", .number(Double(core.silences.values.filter { $0.isActive(at: nowMs / 1000) }.count))),
            ("invalid_alerts", .number(Double(invalidAlerts))),
        ])
        if let url = options.heartbeatURL {
            section["heartbeat"] = .object(JSONObject([
                ("url", .string(HTTPURL.masked(url))), ("sent", .number(Double(heartbeat.sent))), ("failed", .number(Double(heartbeat.failed))),
                ("last_error", heartbeat.lastError.map { .string($0) } ?? .null),
            ]))
        }
        return .object(section)
    }
}

/// `pilot silence add|list|expire`.
public struct SilenceRequest: ControlRequest {
    public static let commands = ["silence-add", "silence-list", "silence-expire"]
    public enum Action: Sendable {
        case add(matchers: [AlertMatcher], seconds: Int64, comment: String, by: String)
        case list
        case expire(String)
    }
    public var action: Action

    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        switch command {
        case "silence-list":
            action = .list
        case "silence-expire":
            guard let id = fields["id"]?.stringValue, !id.isEmpty else { throw ControlRequestError("silence-expire needs an id") }
            action = .expire(id)
        default:
            guard case .array(let items)? = fields["matchers"], let seconds = fields["for_s"]?.int64Value, seconds > 0 else {
                throw ControlRequestError("silence-add needs matchers and for_s")
            }
            do {
                action = .add(matchers: try Silence.matchers(items.compactMap(\.stringValue)), seconds: seconds,
                              comment: fields["comment"]?.stringValue ?? "", by: fields["by"]?.stringValue ?? "")
            } catch {
                throw ControlRequestError("\(error)")
            }
        }
    }
}

/// `pilot alert-router test RECEIVER`.
public struct RouterTestRequest: ControlRequest {
    public static let commands = ["router-test"]
    public var receiver: String
    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        guard let receiver = fields["receiver"]?.stringValue else { throw ControlRequestError("router-test needs a receiver") }
        self.receiver = receiver
    }
}
