public import Logging
public import NIOCore
internal import NIOPosix
public import PilotAggregator
public import PilotCore
public import PilotNode
internal import PilotTransport
internal import PilotRegistry

/// `pilot aggregator`: a node that is the fleet's hub. It subscribes to its
/// own broker (`metrics/*`, `health/*`, durable, so a restart loses
/// nothing), keeps the fleet's latest state, runs the alert engine and
/// publishes alerts to `alerts/METRIC/HOST`, prints the fleet table, and
/// serves `/api/hosts`, `/api/alerts` and `/metrics`. Everything runs on the
/// node's one event loop.
public final class AggregatorService: NodeRole, @unchecked Sendable {
    public struct Options: Sendable {
        public var http: Endpoint? = Endpoint(host: "127.0.0.1", port: 9190)
        public var engine = AlertEngine.Options()
        public var tableSeconds: Int64 = 60
        public var printTable = true
        /// Who may read and write over HTTP (tokens, TLS).
        public var access = HTTPAccess()
        public init() {}
    }

    public let name = "aggregator"
    var node: Node!
    let options: Options
    let logger: Logger
    var loop: any EventLoop { node.loop }
    var engine: AlertEngine
    var fleet = FleetState()
    private let statePath: String
    private var subscriber = 0
    /// The alert state (every firing alert and every host's last sight) is
    /// written at most once per 200 ms, however many notices: a fleet of
    /// 10,000 coming back would otherwise write it once per host.
    private lazy var stateSaver = CoalescedWrite(loop: loop, delay: .milliseconds(200)) { [unowned self] in self.saveState() }
    private var http: (any Channel)?
    private var timers: [RepeatedTask] = []
    /// The registry poll under way, which `stop` waits for (set on the loop).
    private var directoryPoll: Task<Void, Never>?
    public private(set) var httpAddress: String?
    /// This run's start (Unix ms): change numbers count from it, so a
    /// dashboard that asks with another run's epoch gets everything again.
    let epoch = WallClock.nowMilliseconds()

    /// Restores the alert state kept in `stateDirectory` (the node's).
    public init(options: Options, stateDirectory: String, logger: Logger) throws {
        self.options = options
        self.logger = logger
        statePath = stateDirectory + "/alerts.json"
        if LocalFile.exists(statePath) {
            let text = try LocalFile.readText(statePath, maxBytes: 64 << 20)
            do { engine = try AlertEngine(options: options.engine, restoring: JSONValue.parse(text, limits: .init(maxBytes: 64 << 20, maxDepth: 8))) } catch {
                throw EventServiceError("\(statePath): \(error)")
            }
        } else {
            engine = AlertEngine(options: options.engine)
        }
    }

    public func register(_ requests: inout ControlRequests) {
        requests.answer(AlertsRequest.self) { [unowned self] _ in await alertsReply() }
    }

    public func start(on node: Node) async throws {
        self.node = node
        try await loop.submit { self.engine.started(at: Self.now()) }.get()
        guard let events = node.events else { throw EventServiceError("the node's event service did not start") }
        let filters = [try TopicFilter("metrics/*"), try TopicFilter("health/*")]
        subscriber = await events.subscribeLocally(filters: filters, durable: "aggregator") { [self] deliveries in
            self.received(deliveries)
        }
        timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            let now = Self.now()
            self.publish(self.engine.tick(now: now))
            self.fleet.refresh(now: now, downAfter: self.options.engine.hostDownAfter)
        })
        // The registry's directory every 15 s: tags for the API, and a host
        // the registry finds offline is down at once.
        timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(2), delay: .seconds(15)) { [self] _ in
            guard directoryPoll == nil else { return } // the last one is still waiting for the registry
            directoryPoll = Task {
                await self.pollDirectory()
                self.loop.execute { self.directoryPoll = nil }
            }
        })
        if options.printTable {
            timers.append(loop.scheduleRepeatedTask(initialDelay: .seconds(options.tableSeconds), delay: .seconds(options.tableSeconds)) { [self] _ in
                Self.printTable(self.fleet.table(now: Self.now()))
            })
        }
        if let endpoint = options.http {
            let tls = try options.access.serverContext(logger: logger)
            http = try await StatusPage.start(group: node.loop, at: endpoint, tls: tls) { [self] request, _ in self.serve(request) }
            if let address = http?.localAddress, let ip = address.ipAddress, let port = address.port { httpAddress = "\(ip):\(port)" }
        }
        logger.info("aggregator started", metadata: [
            "rules": "\(options.engine.rules.map(\.description).joined(separator: "; "))", "http": "\(httpAddress ?? "off")",
            "firing": "\(engine.firing.count)",
        ])
    }

    /// Timers and the HTTP listener stop, and the alert state is saved; the
    /// broker keeps this subscriber's position (acknowledged as it went).
    public func stop() async {
        guard let node else { return }
        try? await http?.close()
        let poll = try? await node.loop.submit { [self] () -> Task<Void, Never>? in
            for timer in timers { timer.cancel() }
            timers = []
            return directoryPoll
        }.get()
        await poll?.value
        try? await node.loop.submit { [self] in saveState() }.get()
    }

    static func now() -> Int64 { WallClock.nowMilliseconds() / 1000 }

    // MARK: On the loop

    private func received(_ deliveries: [EventService.Delivery]) {
        let now = Self.now()
        var notices: [AlertNotice] = []
        for delivery in deliveries {
            guard let payload = delivery.object else { continue }
            fleet.observe(topic: delivery.topic, payload: payload, now: now)
            notices += engine.observe(topic: delivery.topic, payload: payload, now: now)
        }
        publish(notices)
        // The state first, then the position: a crash between them replays
        // messages the engine has seen, which changes nothing.
        if let last = deliveries.last {
            stateSaver.whenWritten { [self] in node.events?.acknowledgeLocally(subscriber, upTo: last.id) }
        }
    }

    private func pollDirectory() async {
        guard let registry = node.registry, let nodes = try? await registry.search("") else { return }
        let views = nodes.compactMap { try? RegistryProtocol.nodeView($0) }
        loop.execute { [self] in
            let now = Self.now()
            var notices: [AlertNotice] = []
            for view in views {
                fleet.directory(host: view.record.hostname, tags: view.record.tags, online: view.presence == .online,
                                address: view.record.endpoints.first, overlay: view.record.address.description)
                if view.presence == .offline { notices += engine.registryReports(host: view.record.hostname, online: false, now: now) }
            }
            publish(notices)
        }
    }

    private func publish(_ found: [AlertNotice]) {
        guard !found.isEmpty else { return }
        let notices = found.map { fleet.enriched($0, rules: options.engine.rules) }
        for notice in notices { fleet.noted(notice) }
        for notice in notices {
            logger.notice("alert \(notice.status ?? "?")", metadata: [
                "topic": "\(notice.topic)", "severity": "\(notice.severity ?? "?")", "value": "\(notice.payload["value"] ?? .null)",
            ])
        }
        let messages = notices.compactMap { notice in (try? Topic(notice.topic)).map { (topic: $0, payload: JSONValue.object(notice.payload).description) } }
        node.events?.publishOnLoop(messages) // on the loop already: in the broker before the state is saved
        _ = stateSaver.request()
    }

    private func saveState() {
        do { try LocalFile.writeAtomically(statePath, Array(engine.state.description.utf8), mode: 0o600) } catch {
            logger.error("cannot save the alert state", metadata: ["error": "\(error)"])
        }
    }

    func alertsJSON() -> JSONValue {
        .array(engine.firing.values.sorted { ($0.host, $0.metric) < ($1.host, $1.metric) }.map { alert in
            .object(alert.notice(status: "firing", at: alert.lastSentAt).payload)
        })
    }

    private func alertsReply() async -> JSONObject {
        let alerts = (try? await loop.submit { self.alertsJSON() }.get()) ?? .array([])
        return JSONObject([("alerts", alerts)])
    }

    static func printTable(_ table: String) {
        let bytes = Array((table + "\n\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
}

/// `pilot alerts`: what fires now.
public struct AlertsRequest: ControlRequest {
    public static let commands = ["alerts"]
    public init(command: String, fields: JSONValue) {}
}
