public import PilotCore
public import PilotNode
internal import PilotStore

/// What the dashboard reads from the store on the hub's node: a host's
/// series, and all of them over a range in one answer with each step's
/// min and max beside its average.
extension StoreService {
    func history(_ request: HistoryRequest) async throws -> JSONObject {
        let answer = try await loop.submit { [self] () -> JSONValue in
            let keys = store.series(host: request.host, metric: request.metric)
            guard let range = request.range else {
                return .array(keys.map { .object(JSONObject([("metric", .string($0.metric)), ("labels", Self.labels($0))])) })
            }
            var series: [JSONValue] = []
            for key in keys {
                var entry = JSONObject([("metric", .string(key.metric)), ("labels", Self.labels(key))])
                func points(_ list: [(Int64, Double)]) -> JSONValue {
                    .array(list.map { .array([.number(Double($0.0)), $0.1.isFinite ? .number($0.1) : .null]) })
                }
                if range.step > 0 {
                    let bands = try store.bands(key, from: range.from, to: range.to, step: range.step)
                    entry["points"] = points(bands.map { ($0.start, $0.average) })
                    entry["min"] = points(bands.map { ($0.start, $0.min) })
                    entry["max"] = points(bands.map { ($0.start, $0.max) })
                } else {
                    entry["points"] = points(try store.samples(key, from: range.from, to: range.to).map { ($0.timestamp, $0.value) })
                }
                series.append(.object(entry))
            }
            return .array(series)
        }.get()
        return JSONObject([("series", answer)])
    }

    static func labels(_ key: SeriesStore.Key) -> JSONValue {
        .object(JSONObject(key.labels.map { ($0.name, .string($0.value)) }))
    }
}

/// A host's series (no range), or their points between two times (Unix
/// milliseconds): raw with `step` 0, else one point per step with the
/// step's `min` and `max`.
public struct HistoryRequest: ControlRequest {
    public static let commands = ["history"]
    public var host: String
    public var metric: String?
    public var range: (from: Int64, to: Int64, step: Int64)?
    /// Points per series at most, as Prometheus's query_range allows.
    public static let maxPoints: Int64 = 11_000

    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        host = try fields.requiredString("host", for: command)
        metric = fields["metric"]?.stringValue
        guard let from = fields["from"]?.int64Value, let to = fields["to"]?.int64Value else { range = nil; return }
        let step = fields["step"]?.int64Value ?? 0
        guard from <= to, step >= 0 else { throw ControlRequestError("history needs from <= to and a step of 0 or more") }
        if step == 0, to - from > 86_400_000 { throw ControlRequestError("raw samples are given for at most 24 h: give a step for a longer range") }
        if step > 0, (to - from) / step > Self.maxPoints {
            throw ControlRequestError("the range holds more than \(Self.maxPoints) steps of \(step / 1000)s: give a larger step")
        }
        range = (from, to, step)
    }
}
