public import Logging
public import NIOCore
internal import NIOPosix
public import PilotCore
public import PilotNode
internal import PilotRemoteWrite
internal import PilotStore
internal import PilotTransport

/// `pilot store`: a node that is a durable subscriber (`metrics/*`,
/// `health/*`) at the hub and writes every numeric field of every message
/// to its series store (`STATE/store.db`), acknowledging to the hub only
/// what is committed, so a kill -9 loses nothing and a resend is not
/// counted twice. Answers `pilot query` over the control socket.
public final class StoreService: NodeRole, @unchecked Sendable {
    public let name = "store"
    private var node: Node!
    let logger: Logger
    let store: SeriesStore
    private var subscription: RemoteSubscription?
    private var subscribing: Task<Void, Never>?
    /// Set by `stop`: deliveries after it are not stored nor acknowledged (on the loop).
    private var stopped = false
    var loop: any EventLoop { node.loop }

    /// Prometheus's read API subset (nil: off).
    let http: Endpoint?
    let httpAccess: HTTPAccess
    private var httpChannel: (any Channel)?
    public private(set) var httpAddress: String?

    /// Raw samples and rollups are kept this long (milliseconds).
    public struct Retention: Sendable {
        public var raw: Int64 = 30 * 86_400_000
        public var rollups: Int64 = 365 * 86_400_000
        public init() {}
    }
    let retention: Retention
    private var maintenance: RepeatedTask?

    /// Prometheus remote write: where to, and how many bytes of requests
    /// may wait on disk while the endpoint is away.
    public struct RemoteWrite: Sendable {
        public var url: String
        public var backlogBytes: Int = 256 << 20
        /// `Name: value` lines sent with every request (never logged).
        public var headers: [String] = []
        public init(url: String, backlogBytes: Int = 256 << 20, headers: [String] = []) {
            self.url = url
            self.backlogBytes = backlogBytes
            self.headers = headers
        }
    }
    private let outbox: RemoteWriteOutbox?
    private let remoteWriteTarget: (RemoteWriteTarget, [(name: String, value: String)])?
    /// Made at start, on the node's loop.
    private var remoteWriter: RemoteWriter?

    /// Opens `STATE/store.db` in `stateDirectory` (the node's).
    public init(stateDirectory: String, http: Endpoint? = Endpoint(host: "127.0.0.1", port: 9201), httpAccess: HTTPAccess = HTTPAccess(),
                retention: Retention = Retention(), remoteWrite: RemoteWrite? = nil, logger: Logger) throws {
        self.retention = retention
        self.http = http
        self.httpAccess = httpAccess
        self.logger = logger
        let path = stateDirectory + "/store.db"
        do { store = try SeriesStore(path: path) } catch { throw EventServiceError("cannot open the store \(path): \(error)") }
        store.refuse(olderThan: WallClock.nowMilliseconds() - retention.raw)
        if let remoteWrite {
            let target = try RemoteWriteTarget(remoteWrite.url)
            do { outbox = try RemoteWriteOutbox(connection: store.connection, maxBytes: remoteWrite.backlogBytes) } catch {
                throw EventServiceError("cannot open the remote-write backlog in \(path): \(error)")
            }
            let headers = try remoteWrite.headers.map { try RemoteWriteTarget.header($0) }
            remoteWriteTarget = (target, headers)
        } else {
            outbox = nil
            remoteWriteTarget = nil
        }
    }

    public func register(_ requests: inout ControlRequests) {
        requests.answer(QueryRequest.self) { [unowned self] request in try await query(request) }
        requests.answer(HistoryRequest.self) { [unowned self] request in try await history(request) }
    }

    public func statusSection() async -> JSONValue? {
        (try? await loop.submit { self.section() }.get()) ?? .null
    }

    /// Subscribes at the hub and serves; on the hub's own node (pilot up,
    /// or a hub that keeps history) the subscription is in process.
    public func start(on node: Node) async throws {
        self.node = node
        if let (target, headers) = remoteWriteTarget, let outbox {
            remoteWriter = RemoteWriter(target: target, headers: headers, outbox: outbox, loop: node.loop, group: node.group, logger: logger)
        }
        guard let events = node.events else { throw EventServiceError("the node's event service did not start") }
        guard let hub = node.options.hub else { throw EventServiceError("no hub configured: pilot init --hub NAME") }
        let filters = [try TopicFilter("metrics/*"), try TopicFilter("health/*")]
        // Retention in small steps every 10 s: never one long blocking pass.
        maintenance = loop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(10)) { [self] _ in
            do { try store.applyRetention(now: WallClock.nowMilliseconds(), rawAge: retention.raw, rollupAge: retention.rollups) } catch {
                logger.error("cannot apply retention", metadata: ["error": "\(error)"])
            }
        }
        if let http {
            // On the node's one thread, like the store: no locks.
            let handler = httpAccess.guarding { [self] request, loop in loop.makeSucceededFuture(self.api(request.path, request.parameters)) }
            httpChannel = try await StatusPage.start(group: node.loop, at: http, tls: try httpAccess.serverContext(logger: logger), handler: handler)
            if let address = httpChannel?.localAddress, let ip = address.ipAddress, let port = address.port { httpAddress = "\(ip):\(port)" }
        }
        if let remoteWriter {
            // A backlog left from before a restart goes out first.
            loop.execute { remoteWriter.queued() }
        }
        // Retried until the hub answers (a store may start before its hub),
        // in the background so that a stop meanwhile is not held up.
        subscribing = Task { [self] in
            while !Task.isCancelled {
                do {
                    let subscription = try await events.subscribe(hubName: hub, filters: filters, durable: "store") { [self] deliveries in
                        self.received(deliveries)
                    }
                    try? await loop.submit { self.subscription = subscription }.get()
                    break
                } catch {
                    logger.warning("cannot subscribe at the hub yet; retrying", metadata: ["hub": "\(hub)", "error": "\(error)"])
                    try? await Task.sleep(for: .seconds(2))
                }
            }
            logger.info("store subscribed", metadata: [
                "hub": "\(hub)", "series": "\(store.seriesCount)", "http": "\(httpAddress ?? "off")",
                "remote_write": "\(remoteWriter?.target.display ?? "off")", "remote_write_backlog": "\(outbox?.statistics.queuedSamples ?? 0)",
            ])
        }
    }

    /// `pilot status --json` → "store": what was stored, and remote write's progress.
    private func section() -> JSONValue {
        let s = store.statistics
        var section = JSONObject([
            ("series", .number(Double(store.seriesCount))), ("stored", .number(Double(s.stored))),
            ("duplicates", .number(Double(s.duplicates))), ("too_old", .number(Double(s.tooOld))), ("chunks", .number(Double(s.chunks))),
        ])
        if let remoteWriter, let outbox {
            let w = remoteWriter.statistics, o = outbox.statistics
            section["remote_write"] = .object(JSONObject([
                ("url", .string(remoteWriter.target.display)), ("queued_samples", .number(Double(o.queuedSamples))),
                ("queued_bytes", .number(Double(o.queuedBytes))), ("sent_samples", .number(Double(w.sentSamples))),
                ("requests", .number(Double(w.sentRequests))), ("refused_samples", .number(Double(w.refusedSamples))),
                ("dropped_samples", .number(Double(o.droppedSamples))), ("failed_attempts", .number(Double(w.failedAttempts))),
                ("last_error", w.lastError.map { .string($0) } ?? .null),
            ]))
        }
        return .object(section)
    }

    /// Stops storing: what arrives afterwards is neither stored nor
    /// acknowledged (the hub keeps it), the last acknowledgement reaches the
    /// hub, the HTTP listener closes and remote write stops between requests.
    public func stop() async {
        guard let node else { return }
        try? await node.loop.submit { [self] in
            stopped = true
            maintenance?.cancel()
        }.get()
        subscribing?.cancel()
        await subscribing?.value
        let subscription = try? await node.loop.submit { self.subscription }.get()
        await subscription?.stop()
        try? await httpChannel?.close()
        await remoteWriter?.shutdown()
    }

    /// On the node's loop: one transaction for what arrived, then the ack.
    private func received(_ deliveries: [EventService.Delivery]) {
        guard !stopped else { return }
        var samples: [Sample] = []
        let now = WallClock.nowMilliseconds()
        for delivery in deliveries {
            guard let payload = delivery.object else { continue }
            samples += Sample.extract(topic: delivery.topic, payload: payload, receivedAt: now)
        }
        do {
            // New samples join the remote-write backlog in the same
            // transaction: acknowledged to the hub means queued for the remote end.
            var dropped = 0
            try store.append(samples, alsoWithNew: outbox.map { outbox in
                { fresh in dropped += try outbox.enqueue(try RemoteWriteRequest.encode(fresh), samples: fresh.count) }
            })
            if let last = deliveries.last { subscription?.acknowledge(upTo: last.id) }
            if dropped > 0 {
                logger.warning("the remote-write backlog is full; dropped its oldest samples", metadata: [
                    "dropped": "\(dropped)", "dropped_total": "\(outbox?.statistics.droppedSamples ?? 0)", "max_bytes": "\(outbox?.maxBytes ?? 0)",
                ])
            }
            remoteWriter?.queued()
        } catch {
            // Not acknowledged: the hub sends them again.
            logger.error("cannot store samples", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Prometheus's HTTP read API (a subset)

    private func api(_ path: String, _ query: [(String, String)]) -> StatusPage.Response {
        func parameter(_ name: String) -> String? { query.last { $0.0 == name }?.1 }
        func time(_ name: String, default value: Int64) throws(ParseError) -> Int64 {
            guard let text = parameter(name) else { return value }
            guard let seconds = Double(text), seconds.isFinite else { throw ParseError(name, text, "not a Unix time in seconds") }
            return Int64((seconds * 1000).rounded())
        }
        func success(_ data: JSONValue) -> StatusPage.Response {
            .init(status: 200, contentType: "application/json", body: JSONValue.object(JSONObject([("status", .string("success")), ("data", data)])).description)
        }
        func failure(_ message: String) -> StatusPage.Response {
            .init(status: 400, contentType: "application/json", body: JSONValue.object(JSONObject([
                ("status", .string("error")), ("errorType", .string("bad_data")), ("error", .string(message)),
            ])).description)
        }
        func labels(_ key: SeriesStore.Key) -> JSONValue {
            .object(JSONObject([("__name__", .string(key.metric))] + key.labels.map { ($0.name, .string($0.value)) }))
        }
        func number(_ value: Double) -> JSONValue { .string(value.isNaN ? "NaN" : value == .infinity ? "+Inf" : value == -.infinity ? "-Inf" : "\(value)") }
        let now = WallClock.nowMilliseconds()
        do {
            switch path {
            case "/api/v1/query_range", "/api/v1/query":
                let parsed = try PromQuery.parse(parameter("query") ?? "")
                let ranged = path.hasSuffix("_range")
                let end = try time(ranged ? "end" : "time", default: now)
                let start = ranged ? try time("start", default: end - 3_600_000) : end
                let stepSeconds = Double(parameter("step") ?? "60") ?? 60
                let step = max(Int64(1), Int64(stepSeconds * 1000))
                guard (end - start) / step <= 11_000 else { return failure("exceeded maximum resolution of 11,000 points per timeseries") }
                let reach = (parsed.rangeMilliseconds ?? PromQuery.lookback)
                var result: [JSONValue] = []
                for key in store.series(metric: parsed.metric) where parsed.matches(key) {
                    let samples = try store.samples(key, from: start - reach, to: end)
                    var points: [JSONValue] = []
                    var t = start
                    while t <= end {
                        if let value = parsed.value(at: t, in: samples) { points.append(.array([.number(Double(t) / 1000), number(value)])) }
                        t += step
                    }
                    guard !points.isEmpty else { continue }
                    var series = JSONObject([("metric", labels(key))])
                    if ranged { series["values"] = .array(points) } else { series["value"] = points[0] }
                    result.append(.object(series))
                }
                return success(.object(JSONObject([("resultType", .string(ranged ? "matrix" : "vector")), ("result", .array(result))])))
            case "/api/v1/series":
                let selectors = try query.filter { $0.0 == "match[]" }.map { try PromQuery.parse($0.1) }
                let keys = store.series().filter { key in selectors.isEmpty || selectors.contains { $0.matches(key) } }
                return success(.array(keys.map(labels)))
            case "/api/v1/labels":
                var names: Set<String> = ["__name__"]
                for key in store.series() { for label in key.labels { names.insert(label.name) } }
                return success(.array(names.sorted().map { .string($0) }))
            case let label where label.hasPrefix("/api/v1/label/") && label.hasSuffix("/values"):
                let name = String(label.dropFirst("/api/v1/label/".count).dropLast("/values".count))
                var values: Set<String> = []
                for key in store.series() {
                    if name == "__name__" { values.insert(key.metric) }
                    for item in key.labels where item.name == name { values.insert(item.value) }
                }
                return success(.array(values.sorted().map { .string($0) }))
            case "/api/v1/status/buildinfo":
                return success(.object(JSONObject([("version", .string("2.42.0")), ("application", .string("pilot store"))])))
            default:
                return .init(status: 404, contentType: "text/plain", body: "not found: /api/v1/query_range, /api/v1/query, /api/v1/series, /api/v1/labels, /api/v1/label/NAME/values\n")
            }
        } catch {
            return failure("\(error)")
        }
    }

    private func query(_ request: QueryRequest) async throws -> JSONObject {
        let (metric, from, to, step, wanted) = (request.metric, request.from, request.to, request.step, request.labels)
        let aggregate = Downsample.Aggregate(rawValue: request.aggregate) ?? .avg
        let answer = try? await loop.submit { [self] () -> JSONValue in
            var series: [JSONValue] = []
            let candidates = wanted.first { $0.0 == "host" }.map { store.series(host: $0.1, metric: metric) } ?? store.series(metric: metric)
            for key in candidates where wanted.allSatisfy({ want in key.labels.contains { $0.name == want.0 && $0.value == want.1 } }) {
                // A range that reaches past raw retention reads the rollups there.
                let points = step > 0 ? try store.downsampled(key, from: from, to: to, step: step, aggregate) : try store.samples(key, from: from, to: to)
                series.append(.object(JSONObject([
                    ("metric", .string(key.metric)),
                    ("labels", .object(JSONObject(key.labels.map { ($0.name, .string($0.value)) }))),
                    ("points", .array(points.map { .array([.number(Double($0.timestamp)), $0.value.isFinite ? .number($0.value) : .null]) })),
                ])))
            }
            return .array(series)
        }.get()
        guard let answer else { throw EventServiceError("the store could not be read") }
        return JSONObject([("series", answer)])
    }
}

/// `pilot query METRIC`: samples of the matching series between two times
/// (Unix milliseconds), raw or one point per `step` milliseconds.
public struct QueryRequest: ControlRequest {
    public static let commands = ["query"]
    public var metric: String
    public var from: Int64
    public var to: Int64
    public var step: Int64
    public var aggregate: String
    public var labels: [(String, String)]
    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        guard let metric = fields["metric"]?.stringValue, let from = fields["from"]?.int64Value, let to = fields["to"]?.int64Value else {
            throw ControlRequestError("query needs metric, from and to")
        }
        (self.metric, self.from, self.to) = (metric, from, to)
        step = fields["step"]?.int64Value ?? 0
        aggregate = fields["agg"]?.stringValue ?? "avg"
        labels = []
        if case .object(let wanted)? = fields["labels"] {
            for member in wanted { if let value = member.value.stringValue { labels.append((member.key, value)) } }
        }
    }
}
