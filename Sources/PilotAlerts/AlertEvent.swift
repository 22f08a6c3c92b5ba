public import PilotCore

/// A label of an alert as receivers see it (`alertname`, `host`,
/// `severity`, then the series' own such as `mount`).
public struct Label: Hashable, Sendable, Comparable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
    public static func < (a: Label, b: Label) -> Bool { (a.name, a.value) < (b.name, b.value) }
}

/// One alert notice from the aggregator (`alerts/METRIC/HOST`), as the
/// router keeps it: the latest state of the alert its fingerprint names.
public struct AlertEvent: Sendable, Equatable {
    public enum Status: String, Sendable { case firing, resolved }

    public var fingerprint: String
    public var status: Status
    /// The metric, or `host_down`, or `health`: Alertmanager's `alertname`.
    public var name: String
    public var host: String
    /// `warning` or `critical`.
    public var severity: String
    /// The series' own labels (`mount`, `check`, …), sorted by name.
    public var labels: [Label]
    public var value: Double?
    public var threshold: Double?
    /// `above` or `below` the threshold, when the rule says.
    public var comparison: String?
    /// How long the rule's condition had to hold (seconds), when it says.
    public var forSeconds: Int64?
    /// Unix seconds.
    public var startsAt: Int64
    public var endsAt: Int64?
    /// When the aggregator published this state (Unix seconds).
    public var at: Int64
    /// host_down: when the host was last heard (Unix seconds), and from where.
    public var lastSeen: Int64?
    public var lastAddress: String?

    public init(fingerprint: String, status: Status, name: String, host: String, severity: String, labels: [Label] = [],
                value: Double? = nil, threshold: Double? = nil, comparison: String? = nil, forSeconds: Int64? = nil,
                startsAt: Int64, endsAt: Int64? = nil, at: Int64, lastSeen: Int64? = nil, lastAddress: String? = nil) {
        self.fingerprint = fingerprint
        self.status = status
        self.name = name
        self.host = host
        self.severity = severity
        self.labels = labels.sorted()
        self.value = value
        self.threshold = threshold
        self.comparison = comparison
        self.forSeconds = forSeconds
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.at = at
        self.lastSeen = lastSeen
        self.lastAddress = lastAddress
    }

    /// Every label a route or silence can match and a receiver shows:
    /// `alertname`, `host`, `severity`, then the series' own.
    public var allLabels: [Label] {
        [Label("alertname", name), Label("host", host), Label("severity", severity)] + labels
    }

    /// The value of a label by name (`metric` is `alertname`'s other name,
    /// `status` the alert's status).
    public func label(_ name: String) -> String? {
        switch name {
        case "alertname", "metric": return self.name
        case "host": return host
        case "severity": return severity
        case "status": return status.rawValue
        default: return labels.first { $0.name == name }?.value
        }
    }

    /// Reads the aggregator's payload; the topic is `alerts/METRIC/HOST`.
    public init(topic: String, payload: JSONObject) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError("alert", topic, reason) }
        guard let fingerprint = payload["fingerprint"]?.stringValue, !fingerprint.isEmpty, fingerprint.utf8.count <= 128 else {
            throw fail("it has no fingerprint")
        }
        guard let statusText = payload["status"]?.stringValue, let status = Status(rawValue: statusText) else {
            throw fail("its status is not firing or resolved")
        }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard let name = payload["metric"]?.stringValue ?? (levels.count >= 2 ? String(levels[1]) : nil), !name.isEmpty else {
            throw fail("it names no metric")
        }
        guard let host = payload["host"]?.stringValue ?? (levels.count >= 3 ? String(levels[2]) : nil), !host.isEmpty else {
            throw fail("it names no host")
        }
        guard let at = payload["ts"]?.int64Value ?? payload["starts_at"]?.int64Value else { throw fail("it has no time (ts)") }
        var labels: [Label] = []
        if case .object(let object)? = payload["labels"] {
            for member in object.prefix(32) {
                guard let value = member.value.stringValue, !["alertname", "host", "severity"].contains(member.key) else { continue }
                labels.append(Label(member.key, value))
            }
        }
        self.init(fingerprint: fingerprint, status: status, name: name, host: host,
                  severity: payload["severity"]?.stringValue ?? "warning", labels: labels,
                  value: payload["value"]?.doubleValue, threshold: payload["threshold"]?.doubleValue,
                  comparison: payload["comparison"]?.stringValue, forSeconds: payload["for_s"]?.int64Value,
                  startsAt: payload["starts_at"]?.int64Value ?? at, endsAt: payload["ends_at"]?.int64Value, at: at,
                  lastSeen: payload["last_seen"]?.int64Value, lastAddress: payload["last_address"]?.stringValue)
    }

    /// The router's own record of the alert (the outbox, its state), which
    /// `init(record:)` reads back.
    public var record: JSONObject {
        var object = JSONObject([
            ("fingerprint", .string(fingerprint)), ("status", .string(status.rawValue)), ("metric", .string(name)),
            ("host", .string(host)), ("severity", .string(severity)), ("ts", .number(Double(at))),
            ("starts_at", .number(Double(startsAt))),
        ])
        if !labels.isEmpty { object["labels"] = .object(JSONObject(labels.map { ($0.name, .string($0.value)) })) }
        if let value { object["value"] = .number(value) }
        if let threshold { object["threshold"] = .number(threshold) }
        if let comparison { object["comparison"] = .string(comparison) }
        if let forSeconds { object["for_s"] = .number(Double(forSeconds)) }
        if let endsAt { object["ends_at"] = .number(Double(endsAt)) }
        if let lastSeen { object["last_seen"] = .number(Double(lastSeen)) }
        if let lastAddress { object["last_address"] = .string(lastAddress) }
        return object
    }

    public init(record: JSONValue) throws(ParseError) {
        guard case .object(let object) = record else { throw ParseError("alert record", "", "not an object") }
        try self.init(topic: "alerts", payload: object)
    }
}

/// What one receiver is sent at once: a group's alerts (firing first,
/// then those that resolved since the last notification), with an id that
/// stays the same when a delivery is retried, so receivers can discard a
/// duplicate.
public struct Notification: Sendable, Equatable {
    public var id: String
    public var receiver: String
    /// Alertmanager's form: `{}:{alertname="disk_pct"}`.
    public var groupKey: String
    public var groupLabels: [Label]
    public var alerts: [AlertEvent]
    /// Unix seconds.
    public var createdAt: Int64
    /// A test notification from `pilot alert-router test`.
    public var isTest = false

    public init(id: String, receiver: String, groupKey: String, groupLabels: [Label], alerts: [AlertEvent], createdAt: Int64, isTest: Bool = false) {
        self.id = id
        self.receiver = receiver
        self.groupKey = groupKey
        self.groupLabels = groupLabels
        self.alerts = alerts
        self.createdAt = createdAt
        self.isTest = isTest
    }

    /// `firing` while any of its alerts fires.
    public var status: AlertEvent.Status { alerts.contains { $0.status == .firing } ? .firing : .resolved }
    public var firing: [AlertEvent] { alerts.filter { $0.status == .firing } }
    public var resolved: [AlertEvent] { alerts.filter { $0.status == .resolved } }

    /// Labels every alert has with the same value (Alertmanager's `commonLabels`).
    public var commonLabels: [Label] {
        guard var common = alerts.first.map({ Set($0.allLabels) }) else { return [] }
        for alert in alerts.dropFirst() { common.formIntersection(alert.allLabels) }
        return common.sorted()
    }

    public var record: JSONObject {
        var object = JSONObject([
            ("id", .string(id)), ("receiver", .string(receiver)), ("group_key", .string(groupKey)),
            ("group_labels", .object(JSONObject(groupLabels.map { ($0.name, .string($0.value)) }))),
            ("alerts", .array(alerts.map { .object($0.record) })), ("created_at", .number(Double(createdAt))),
        ])
        if isTest { object["test"] = .bool(true) }
        return object
    }

    public init(record: JSONValue) throws(ParseError) {
        guard let id = record["id"]?.stringValue, let receiver = record["receiver"]?.stringValue, let groupKey = record["group_key"]?.stringValue,
              let createdAt = record["created_at"]?.int64Value, case .array(let items)? = record["alerts"] else {
            throw ParseError("notification record", record["id"]?.stringValue ?? "?", "it is incomplete")
        }
        var labels: [Label] = []
        if case .object(let object)? = record["group_labels"] {
            for member in object { if let value = member.value.stringValue { labels.append(Label(member.key, value)) } }
        }
        var alerts: [AlertEvent] = []
        for item in items { alerts.append(try AlertEvent(record: item)) }
        self.init(id: id, receiver: receiver, groupKey: groupKey, groupLabels: labels, alerts: alerts, createdAt: createdAt,
                  isTest: record["test"] == .bool(true))
    }
}
