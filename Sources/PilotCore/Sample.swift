/// One point of one series: a metric name, its labels, a value and a time.
///
/// The aggregator alerts on and renders these, the store writes them and
/// remote write sends them, so one message names its series the same way
/// in `/metrics`, in `STATE/store.db` and at the remote end.
public struct Sample: Equatable, Sendable {
    /// The message's field, e.g. `cpu_pct`; `check_ok` for a check's state.
    public var metric: String
    /// In the order `extract` gives them: `host`, then a list entry's name
    /// field (`mount`, `iface`, `device` or `check`), then a health check's
    /// `check`. `/metrics` prints them in this order; the store and remote
    /// write sort them by name.
    public var labels: [(String, String)]
    public var value: Double
    /// Unix milliseconds.
    public var timestamp: Int64

    public init(metric: String, labels: [(String, String)], value: Double, timestamp: Int64) {
        self.metric = metric
        self.labels = labels
        self.value = value
        self.timestamp = timestamp
    }

    public static func == (a: Sample, b: Sample) -> Bool {
        a.metric == b.metric && a.value == b.value && a.timestamp == b.timestamp && a.labels.elementsEqual(b.labels, by: { $0 == $1 })
    }
}

extension Sample {
    /// The fields that name a list entry, the first present winning: a
    /// mount entry carries its `device` too, and it is the mount that tells
    /// the entries apart.
    public static let entryLabels = ["mount", "iface", "device", "check"]

    /// The samples of a message as it came: `health/CHECK/HOST` is a check's
    /// result, any other topic of three levels or more (`metrics/KIND/HOST`)
    /// a host's metrics; the host is the topic's, not the payload's. A
    /// shorter topic names no host, so it has none.
    public static func extract(topic: Topic, payload: JSONObject, receivedAt: Int64) -> [Sample] {
        guard topic.levels.count >= 3 else { return [] }
        let check = topic.levels[0] == "health" ? String(topic.levels[1]) : nil
        return extract(host: String(topic.levels[2]), check: check, payload: payload, receivedAt: receivedAt)
    }

    /// The samples of one message from `host`: every finite number, at the
    /// top level as `FIELD{host}` and in list entries (`mounts`,
    /// `interfaces`, `devices`) as `FIELD{host,mount|iface|device}`. A field
    /// that a list carries too (disk_pct beside mounts[].disk_pct) is taken
    /// from the list only, so the root filesystem is one series, not two.
    /// `ts` (Unix seconds) is the time of them all, never a series of its
    /// own; without it (or out of range) the time is `receivedAt` (ms).
    ///
    /// A check's result (`check` given) comes first as `check_ok{host,check}`
    /// (1 if its `status` is `ok`, else 0), and its numbers (`latency_ms`)
    /// get `check` as their last label.
    public static func extract(host: String, check: String? = nil, payload: JSONObject, receivedAt: Int64) -> [Sample] {
        let timestamp = payload["ts"]?.int64Value.flatMap { seconds in
            let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            return overflow ? nil : milliseconds
        } ?? receivedAt
        let hostLabel = [("host", host)]
        let checkLabel = check.map { [("check", $0)] } ?? []
        var samples: [Sample] = []
        if check != nil {
            samples.append(Sample(metric: "check_ok", labels: hostLabel + checkLabel, value: payload["status"]?.stringValue == "ok" ? 1 : 0,
                                  timestamp: timestamp))
        }
        var listed: Set<String> = []
        for (_, value) in payload {
            guard case .array(let items) = value else { continue }
            for case .object(let item) in items {
                guard let key = entryLabels.first(where: { item[$0]?.stringValue != nil }), let label = item[key]?.stringValue else { continue }
                for (field, entry) in item where field != "ts" {
                    guard case .number(let number) = entry, number.isFinite else { continue }
                    listed.insert(field)
                    samples.append(Sample(metric: field, labels: hostLabel + [(key, label)] + checkLabel, value: number, timestamp: timestamp))
                }
            }
        }
        for (field, value) in payload where field != "ts" && !listed.contains(field) {
            guard case .number(let number) = value, number.isFinite else { continue }
            samples.append(Sample(metric: field, labels: hostLabel + checkLabel, value: number, timestamp: timestamp))
        }
        return samples
    }
}
