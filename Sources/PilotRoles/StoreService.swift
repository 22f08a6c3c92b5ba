public import Logging
internal import NIOCore
internal import NIOPosix
internal import PilotAggregator
public import PilotCore
public import PilotNode
internal import PilotStore
internal import PilotTransport

/// `pilot store`: a node that is a durable subscriber (`metrics/*`,
/// `health/*`) at the hub and writes every numeric field of every message
/// to its series store (`STATE/store.db`), acknowledging to the hub only
/// what is committed, so a kill -9 loses nothing and a resend is not
/// counted twice. Answers `pilot query` over the control socket.
public final class StoreService: @unchecked Sendable {
    public let node: AgentService
    let logger: Logger
    let store: SeriesStore
    private var subscription: RemoteSubscription?
    var loop: any EventLoop { node.group.next() }

    public init(node: AgentService, logger: Logger) throws {
        self.node = node
        self.logger = logger
        let path = node.options.stateDirectory + "/store.db"
        do { store = try SeriesStore(path: path) } catch { throw EventServiceError("cannot open the store \(path): \(error)") }
        node.extraCommands["query"] = { [self] request in await self.query(request) }
    }

    public func start() async throws {
        try await node.start()
        guard let events = node.events else { throw EventServiceError("the node's event service did not start") }
        guard let hub = node.options.hub else { throw EventServiceError("no hub configured: pilot init --hub NAME") }
        let filters = [try TopicFilter("metrics/*"), try TopicFilter("health/*")]
        // Retried until the hub answers: a store may start before its hub.
        while true {
            do {
                subscription = try await events.subscribe(hubName: hub, filters: filters, durable: "store") { [self] deliveries in
                    self.received(deliveries)
                }
                break
            } catch {
                logger.warning("cannot subscribe at the hub yet; retrying", metadata: ["hub": "\(hub)", "error": "\(error)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
        logger.info("store subscribed", metadata: ["hub": "\(hub)", "series": "\(store.seriesCount)"])
    }

    public func run() async throws { try await node.run() }

    /// On the node's loop: one transaction for what arrived, then the ack.
    private func received(_ deliveries: [EventService.Delivery]) {
        var samples: [SeriesStore.Sample] = []
        let now = WallClock.nowMilliseconds()
        for delivery in deliveries {
            guard delivery.topic.levels.count >= 3, case .object(let payload)? = try? JSONValue.parse(delivery.payload) else { continue }
            let host = String(delivery.topic.levels[2])
            let timestamp = payload["ts"]?.int64Value.map { $0 * 1000 } ?? now
            var extra: [(String, String)] = []
            if delivery.topic.levels[0] == "health" {
                extra = [("check", String(delivery.topic.levels[1]))]
                samples.append(SeriesStore.Sample(key: .init(metric: "check_ok", labels: [("host", host)] + extra), timestamp: timestamp,
                                                  value: payload["status"]?.stringValue == "ok" ? 1 : 0))
            }
            for sample in Sample.extract(host: host, payload: payload) where sample.metric != "ts" {
                let key = SeriesStore.Key(metric: sample.metric, labels: [("host", host)] + sample.labels + extra)
                samples.append(SeriesStore.Sample(key: key, timestamp: timestamp, value: sample.value))
            }
        }
        do {
            try store.append(samples)
            if let last = deliveries.last { subscription?.acknowledge(upTo: last.id) }
        } catch {
            // Not acknowledged: the hub sends them again.
            logger.error("cannot store samples", metadata: ["error": "\(error)"])
        }
    }

    private func query(_ request: JSONValue) async -> JSONValue {
        guard let metric = request["metric"]?.stringValue, let from = request["from"]?.int64Value, let to = request["to"]?.int64Value else {
            return ControlSocket.failure("query needs metric, from and to")
        }
        let step = request["step"]?.int64Value ?? 0
        let aggregate = request["agg"]?.stringValue.flatMap(Downsample.Aggregate.init(rawValue:)) ?? .avg
        var wanted: [(String, String)] = []
        if case .object(let labels)? = request["labels"] {
            for member in labels { if let value = member.value.stringValue { wanted.append((member.key, value)) } }
        }
        let answer = try? await loop.submit { [self] () -> JSONValue in
            var series: [JSONValue] = []
            for key in store.series(metric: metric) where wanted.allSatisfy({ want in key.labels.contains { $0.name == want.0 && $0.value == want.1 } }) {
                var points = try store.samples(key, from: from, to: to)
                if step > 0 { points = Downsample.aggregate(points, from: from, step: step, aggregate) }
                series.append(.object(JSONObject([
                    ("metric", .string(key.metric)),
                    ("labels", .object(JSONObject(key.labels.map { ($0.name, .string($0.value)) }))),
                    ("points", .array(points.map { .array([.number(Double($0.timestamp)), $0.value.isFinite ? .number($0.value) : .null]) })),
                ])))
            }
            return .array(series)
        }.get()
        guard let answer else { return ControlSocket.failure("the store could not be read") }
        return ControlSocket.ok(JSONObject([("series", answer)]))
    }
}
