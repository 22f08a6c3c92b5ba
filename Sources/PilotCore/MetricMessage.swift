/// The seed's metric message: a JSON object with `host`, metric fields and
/// `ts` (Unix seconds), e.g.
/// `{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}`.
/// Field order is kept so existing `jq` pipelines see what they always saw.
public struct MetricMessage: Hashable, Sendable {
    public var host: String
    public var timestamp: Int64
    /// Every member other than `host` and `ts`, in order.
    public var fields: JSONObject

    public init(host: String, timestamp: Int64, fields: JSONObject = JSONObject()) {
        self.host = host
        self.timestamp = timestamp
        self.fields = fields
    }

    public init(json: JSONValue) throws(MetricMessageError) {
        guard case .object(let object) = json else { throw MetricMessageError("a metric message must be a JSON object") }
        guard let host = object["host"]?.stringValue, !host.isEmpty else {
            throw MetricMessageError("\"host\" must be a non-empty string")
        }
        guard let ts = object["ts"]?.doubleValue, ts >= 0, ts == ts.rounded(), ts < 1e15 else {
            throw MetricMessageError("\"ts\" must be a whole number of Unix seconds")
        }
        var fields = object
        fields["host"] = nil
        fields["ts"] = nil
        self.init(host: host, timestamp: Int64(ts), fields: fields)
    }

    public init(text: String) throws(MetricMessageError) {
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch { throw MetricMessageError(error.description) }
        try self.init(json: json)
    }

    public var json: JSONValue {
        var object = JSONObject([("host", .string(host))])
        for member in fields { object[member.key] = member.value }
        object["ts"] = .number(Double(timestamp))
        return .object(object)
    }

    /// The message's series (`Sample.extract`), at `timestamp`: what a store
    /// writes and what alert rules read, list entries included.
    public var samples: [Sample] { Sample.extract(host: host, payload: fields, receivedAt: timestamp * 1000) }
}

public struct MetricMessageError: Error, Equatable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { "invalid metric message: \(reason)" }
}
