public import PilotCore

/// An alert as the engine keeps it and publishes it.
public struct Alert: Equatable, Sendable {
    public enum Severity: String, Sendable { case warning, critical }
    public var fingerprint: String
    public var metric: String
    public var host: String
    public var labels: [(String, String)]
    public var severity: Severity
    public var value: Double
    public var threshold: Double
    public var startsAt: Int64
    public var lastSentAt: Int64

    public static func == (a: Alert, b: Alert) -> Bool {
        a.fingerprint == b.fingerprint && a.severity == b.severity && a.value == b.value && a.startsAt == b.startsAt && a.lastSentAt == b.lastSentAt
    }

    /// Stable across restarts and versions: FNV-1a over the rule's metric,
    /// the host and the sorted labels (not the severity).
    public static func fingerprint(metric: String, host: String, labels: [(String, String)]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let text = ([metric, host] + labels.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }).joined(separator: "\u{1F}")
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The seed's alert JSON (`host, metric, value, threshold, severity, ts`)
    /// plus `status`, `fingerprint`, `starts_at` (and `ends_at`, `labels`).
    public func notice(status: String, at now: Int64) -> AlertNotice {
        var payload = JSONObject([
            ("host", .string(host)), ("metric", .string(metric)), ("value", .number((value * 10).rounded() / 10)),
            ("threshold", .number(threshold)), ("severity", .string(severity.rawValue)), ("ts", .number(Double(now))),
            ("status", .string(status)), ("fingerprint", .string(fingerprint)), ("starts_at", .number(Double(startsAt))),
        ])
        if status == "resolved" { payload["ends_at"] = .number(Double(now)) }
        if !labels.isEmpty { payload["labels"] = .object(JSONObject(labels.map { ($0.0, .string($0.1)) })) }
        return AlertNotice(topic: "alerts/\(metric)/\(host)", payload: payload)
    }
}

public struct AlertNotice: Equatable, Sendable {
    public var topic: String
    public var payload: JSONObject
    public var status: String? { payload["status"]?.stringValue }
    public var severity: String? { payload["severity"]?.stringValue }
}

/// Alert rules and the lifecycle of alerts as a pure state machine with an
/// injected clock (Unix seconds): samples and ticks in, notices out.
///
/// - Threshold rules fire after their `for` duration of breaching samples,
///   change severity in place (same fingerprint), and resolve only past
///   the clear value (hysteresis).
/// - Health: a check not ok fires `health` for that check (critical, or
///   warning for warning/unknown), and resolves when it is ok again.
/// - Host down: a host silent for `hostDownAfter` seconds fires `host_down`;
///   its next message resolves it. Its other alerts stay as they are.
/// - A series that stops while its host goes on reporting (a mount
///   unmounted, a check removed, a host moving from the guide's shell
///   agent's `disk_pct` to the agent's per-mount one) resolves its alert
///   after `staleAfter`: nothing is left firing forever.
/// - Firing alerts are published again every `repeatInterval`, never on
///   every sample; their state round-trips through `state`/`init(restoring:)`
///   so a restart neither re-fires nor loses a resolve.
public struct AlertEngine: Sendable {
    public struct Options: Sendable {
        public var rules = AlertRule.defaults
        public var hostDownAfter: Int64 = 90
        public var repeatInterval: Int64 = 4 * 3600
        /// Seconds without a sample of a firing alert's series, while its
        /// host is heard, before the alert resolves as stale (Prometheus's
        /// five-minute lookback).
        public var staleAfter: Int64 = 300
        public init() {}
    }

    public let options: Options
    public private(set) var firing: [String: Alert] = [:]
    private var breachingSince: [String: Int64] = [:]
    /// When each firing alert's series last had a sample (or since the start).
    private var seriesSeen: [String: Int64] = [:]
    public private(set) var lastSeen: [String: Int64] = [:]

    public init(options: Options = Options()) { self.options = options }

    /// A message from a host: `metrics/KIND/HOST` or `health/CHECK/HOST`.
    public mutating func observe(topic: Topic, payload: JSONObject, now: Int64) -> [AlertNotice] {
        guard topic.levels.count >= 3 else { return [] }
        let host = String(topic.levels[2])
        var notices = hostHeard(host, now: now)
        switch topic.levels[0] {
        case "metrics":
            for sample in Sample.extract(host: host, payload: payload, receivedAt: now * 1000) {
                for rule in options.rules where rule.metric == sample.metric { notices += evaluate(rule, sample, host: host, now: now) }
            }
        case "health":
            notices += health(host: host, check: String(topic.levels[1]), status: payload["status"]?.stringValue ?? "unknown", now: now)
        default:
            break
        }
        return notices
    }

    /// The aggregator (re)started at `now`: silence is counted from here, so
    /// hosts are not reported down for the time nobody was listening (their
    /// spools deliver what they sent meanwhile).
    public mutating func started(at now: Int64) {
        for host in lastSeen.keys { lastSeen[host] = max(lastSeen[host]!, now) }
        for fingerprint in firing.keys { seriesSeen[fingerprint] = max(seriesSeen[fingerprint] ?? now, now) }
    }

    /// The registry says a host is offline (its keepalives stopped): it is
    /// down now, without waiting for the silence. Online needs no action:
    /// the host's next message resolves `host_down`.
    public mutating func registryReports(host: String, online: Bool, now: Int64) -> [AlertNotice] {
        guard !online, let seen = lastSeen[host] else { return [] }
        let fingerprint = Alert.fingerprint(metric: "host_down", host: host, labels: [])
        guard firing[fingerprint] == nil else { return [] }
        let alert = Alert(fingerprint: fingerprint, metric: "host_down", host: host, labels: [], severity: .critical,
                          value: Double(now - seen), threshold: Double(options.hostDownAfter), startsAt: now, lastSentAt: now)
        firing[fingerprint] = alert
        return [alert.notice(status: "firing", at: now)]
    }

    /// Time passing: hosts falling silent, and repeats of firing alerts.
    public mutating func tick(now: Int64) -> [AlertNotice] {
        var notices: [AlertNotice] = []
        for (host, seen) in lastSeen where now - seen >= options.hostDownAfter {
            let fingerprint = Alert.fingerprint(metric: "host_down", host: host, labels: [])
            guard firing[fingerprint] == nil else { continue }
            let alert = Alert(fingerprint: fingerprint, metric: "host_down", host: host, labels: [], severity: .critical,
                              value: Double(now - seen), threshold: Double(options.hostDownAfter), startsAt: now, lastSentAt: now)
            firing[fingerprint] = alert
            notices.append(alert.notice(status: "firing", at: now))
        }
        // Series that stopped while their host goes on: resolved, not left firing.
        for (fingerprint, alert) in firing where alert.metric != "host_down" {
            let silent = now - (seriesSeen[fingerprint] ?? alert.startsAt)
            guard silent >= options.staleAfter, let heard = lastSeen[alert.host], now - heard < options.hostDownAfter else { continue }
            firing[fingerprint] = nil
            seriesSeen[fingerprint] = nil
            breachingSince[fingerprint] = nil
            var notice = alert.notice(status: "resolved", at: now)
            notice.payload["reason"] = .string("stale: no sample of this series for \(silent) s while the host reports")
            notices.append(notice)
        }
        for (fingerprint, alert) in firing where now - alert.lastSentAt >= options.repeatInterval {
            firing[fingerprint]!.lastSentAt = now
            notices.append(alert.notice(status: "firing", at: now))
        }
        return notices
    }

    private mutating func hostHeard(_ host: String, now: Int64) -> [AlertNotice] {
        lastSeen[host] = max(lastSeen[host] ?? now, now)
        let fingerprint = Alert.fingerprint(metric: "host_down", host: host, labels: [])
        guard var alert = firing.removeValue(forKey: fingerprint) else { return [] }
        alert.value = 0
        return [alert.notice(status: "resolved", at: now)]
    }

    private mutating func evaluate(_ rule: AlertRule, _ sample: Sample, host: String, now: Int64) -> [AlertNotice] {
        // An alert names its host in a field of its own; its labels, and so
        // its fingerprint (stable across versions), are the sample's others.
        let labels = sample.labels.filter { $0.0 != "host" }
        let fingerprint = Alert.fingerprint(metric: rule.metric, host: host, labels: labels)
        if var alert = firing[fingerprint] {
            alert.value = sample.value
            seriesSeen[fingerprint] = now
            if rule.recovered(sample.value, from: rule.warning) {
                firing[fingerprint] = nil
                breachingSince[fingerprint] = nil
                seriesSeen[fingerprint] = nil
                return [alert.notice(status: "resolved", at: now)]
            }
            let severity: Alert.Severity
            if let critical = rule.critical {
                severity = rule.breaches(sample.value, critical) ? .critical
                    : alert.severity == .critical && !rule.recovered(sample.value, from: critical) ? .critical : .warning
            } else {
                severity = .warning
            }
            if severity != alert.severity {
                alert.severity = severity
                alert.threshold = severity == .critical ? rule.critical ?? rule.warning : rule.warning
                alert.lastSentAt = now
                firing[fingerprint] = alert
                return [alert.notice(status: "firing", at: now)]
            }
            firing[fingerprint] = alert
            return []
        }
        guard rule.breaches(sample.value, rule.warning) else {
            breachingSince[fingerprint] = nil
            return []
        }
        let since = breachingSince[fingerprint] ?? now
        breachingSince[fingerprint] = since
        guard now - since >= rule.forSeconds else { return [] }
        let critical = rule.critical.map { rule.breaches(sample.value, $0) } ?? false
        let alert = Alert(fingerprint: fingerprint, metric: rule.metric, host: host, labels: labels,
                          severity: critical ? .critical : .warning, value: sample.value,
                          threshold: critical ? rule.critical! : rule.warning, startsAt: now, lastSentAt: now)
        firing[fingerprint] = alert
        breachingSince[fingerprint] = nil
        seriesSeen[fingerprint] = now
        return [alert.notice(status: "firing", at: now)]
    }

    private mutating func health(host: String, check: String, status: String, now: Int64) -> [AlertNotice] {
        let labels = [("check", check)]
        let fingerprint = Alert.fingerprint(metric: "health", host: host, labels: labels)
        if status == "ok" {
            seriesSeen[fingerprint] = nil
            guard var alert = firing.removeValue(forKey: fingerprint) else { return [] }
            alert.value = 0
            return [alert.notice(status: "resolved", at: now)]
        }
        let severity: Alert.Severity = status == "critical" ? .critical : .warning
        seriesSeen[fingerprint] = now
        if var alert = firing[fingerprint] {
            guard alert.severity != severity else { return [] }
            alert.severity = severity
            alert.lastSentAt = now
            firing[fingerprint] = alert
            return [alert.notice(status: "firing", at: now)]
        }
        let alert = Alert(fingerprint: fingerprint, metric: "health", host: host, labels: labels, severity: severity, value: 1, threshold: 0,
                          startsAt: now, lastSentAt: now)
        firing[fingerprint] = alert
        return [alert.notice(status: "firing", at: now)]
    }

    // MARK: Persistence

    /// What must survive a restart: firing alerts and when hosts were last heard.
    public var state: JSONValue {
        .object(JSONObject([
            ("version", .number(1)),
            ("firing", .array(firing.values.sorted { $0.fingerprint < $1.fingerprint }.map { alert in
                .object(JSONObject([
                    ("fingerprint", .string(alert.fingerprint)), ("metric", .string(alert.metric)), ("host", .string(alert.host)),
                    ("labels", .object(JSONObject(alert.labels.map { ($0.0, .string($0.1)) }))), ("severity", .string(alert.severity.rawValue)),
                    ("value", .number(alert.value)), ("threshold", .number(alert.threshold)),
                    ("starts_at", .number(Double(alert.startsAt))), ("last_sent_at", .number(Double(alert.lastSentAt))),
                ]))
            })),
            ("last_seen", .object(JSONObject(lastSeen.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
        ]))
    }

    public init(options: Options, restoring state: JSONValue) throws(ParseError) {
        self.init(options: options)
        guard state["version"]?.doubleValue == 1, case .array(let items)? = state["firing"] else {
            throw ParseError("alert state", "", "not an alert state of version 1")
        }
        for item in items {
            guard let fingerprint = item["fingerprint"]?.stringValue, let metric = item["metric"]?.stringValue, let host = item["host"]?.stringValue,
                  let severity = item["severity"]?.stringValue.flatMap(Alert.Severity.init), let value = item["value"]?.doubleValue,
                  let threshold = item["threshold"]?.doubleValue, let startsAt = item["starts_at"]?.int64Value,
                  let lastSentAt = item["last_sent_at"]?.int64Value, case .object(let labelObject)? = item["labels"] else {
                throw ParseError("alert state", fingerprintText(item), "an alert entry is incomplete")
            }
            let labels = labelObject.compactMap { member in member.value.stringValue.map { (member.key, $0) } }
            firing[fingerprint] = Alert(fingerprint: fingerprint, metric: metric, host: host, labels: labels, severity: severity,
                                        value: value, threshold: threshold, startsAt: startsAt, lastSentAt: lastSentAt)
        }
        if case .object(let seen)? = state["last_seen"] {
            for member in seen { if let time = member.value.int64Value { lastSeen[member.key] = time } }
        }
    }

    private func fingerprintText(_ item: JSONValue) -> String { item["fingerprint"]?.stringValue ?? "?" }
}
