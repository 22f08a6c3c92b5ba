import PilotCore

/// What every format needs to know about the router sending it.
public struct FormatContext: Sendable, Equatable {
    /// The dashboard's base URL (`http://hub:9190`), for links; nil: no links.
    public var externalURL: String?
    /// The router's hostname, so a receiver can tell which router spoke.
    public var sender: String

    public init(externalURL: String? = nil, sender: String) {
        self.externalURL = externalURL
        self.sender = sender
    }

    /// The base without a trailing slash, so paths join with exactly one.
    var base: String? {
        guard var url = externalURL, !url.isEmpty else { return nil }
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// The dashboard's page of a host (Alertmanager's `generatorURL`), or "".
    func hostURL(_ host: String) -> String {
        base.map { $0 + "/hosts/" + Formats.pathSegment(host) } ?? ""
    }
}

/// The receivers' formats: pure functions from a `Notification` to the
/// bytes or JSON each kind expects, so every shape is tested without a
/// network and the senders only carry them out.
///
/// Everything a person reads starts from one summary line per alert, so
/// Slack, email, PagerDuty and webhooks say the same thing in the same words.
public enum Formats {
    /// The on-call line of one alert, e.g.
    /// `CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)`,
    /// `CRITICAL web-01 host_down: silent since 23:01:05 UTC (1m30s), last address 10.0.0.5:4000`,
    /// `WARNING web-01 health check nginx failing`,
    /// `RESOLVED db-01 disk_pct 80.2 % on / (resolved after 12m)`.
    public static func summary(_ alert: AlertEvent) -> String {
        let resolved = alert.status == .resolved
        var line = (resolved ? "RESOLVED" : alert.severity.uppercased()) + " " + headline(alert)
        if resolved {
            line += " (resolved after " + TimeText.duration(resolvedAt(alert) - alert.startsAt) + ")"
            return line
        }
        switch alert.name {
        case "host_down":
            let since = silentSince(alert)
            line += ": silent since " + TimeText.clock(since) + " (" + TimeText.duration(alert.at - since) + ")"
            if let address = alert.lastAddress, !address.isEmpty { line += ", last address " + address }
        case "health":
            break
        default:
            guard let threshold = alert.threshold else { break }
            line += " (" + comparison(alert) + " " + trimmed(threshold)
            if let seconds = alert.forSeconds, seconds > 0 { line += " for " + TimeText.duration(seconds) }
            line += ")"
        }
        return line
    }

    /// What a test notification (`pilot alert-router test`) says instead of
    /// its alerts' summaries, so nobody on call mistakes it for an incident.
    public static func testSummary(context: FormatContext) -> String {
        "TEST notification from pilot alert-router on " + context.sender
    }

    /// The summary as a notification shows it: the test line for a test.
    static func summary(_ alert: AlertEvent, in notification: Notification, context: FormatContext) -> String {
        notification.isTest ? testSummary(context: context) : summary(alert)
    }

    /// The summary without severity and detail: `db-01 disk_pct 97.1 % on /`,
    /// `web-01 host_down`, `web-01 health check nginx failing` (email subjects).
    static func headline(_ alert: AlertEvent) -> String {
        var words = [alert.host]
        switch alert.name {
        case "host_down":
            words.append("host_down")
        case "health":
            words.append("health check")
            if let check = alert.label("check") { words.append(check) }
            if alert.status == .firing { words.append("failing") }
        default:
            words.append(alert.name)
            if let value = alert.value { words.append(valueText(value, metric: alert.name)) }
            words += labelPhrases(alert)
        }
        return words.joined(separator: " ")
    }

    /// `on /` for a mount, `on eth0` for an interface or device, `check X`,
    /// and `NAME=VALUE` for any other label, in the labels' order.
    static func labelPhrases(_ alert: AlertEvent) -> [String] {
        alert.labels.map { label in
            switch label.name {
            case "mount", "iface", "device": "on " + label.value
            case "check": "check " + label.value
            default: label.name + "=" + label.value
            }
        }
    }

    /// `above` unless the rule says `below`.
    static func comparison(_ alert: AlertEvent) -> String {
        alert.comparison == "below" ? "below" : "above"
    }

    /// When a host_down alert's host was last heard: `lastSeen`, else what
    /// the value (seconds of silence when it fired) implies.
    static func silentSince(_ alert: AlertEvent) -> Int64 {
        if let seen = alert.lastSeen { return seen }
        guard let value = alert.value, value.isFinite, abs(value) < 1e15 else { return alert.startsAt }
        return alert.startsAt - Int64(value.rounded())
    }

    /// A resolved alert's end: `endsAt`, else when its resolve was published.
    static func resolvedAt(_ alert: AlertEvent) -> Int64 { alert.endsAt ?? alert.at }

    // MARK: Numbers and labels

    /// One decimal (`97.1`), and ` %` after metrics that are percentages.
    static func valueText(_ value: Double, metric: String) -> String {
        oneDecimal(value) + (metric.hasSuffix("_pct") ? " %" : "")
    }

    /// `97.1`, `0.0`, `-3.5`: rounded half away from zero, without Foundation.
    static func oneDecimal(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e15 else { return "\(value)" }
        let tenths = Int64((value * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        return sign + String(tenths.magnitude / 10) + "." + String(tenths.magnitude % 10)
    }

    /// `95`, not `95.0`; `0.25` as it is: a rule's threshold as it was written.
    static func trimmed(_ value: Double) -> String {
        value.isFinite ? JSONValue.format(value) : "\(value)"
    }

    static func labelObject(_ labels: [Label]) -> JSONValue {
        .object(JSONObject(labels.map { ($0.name, .string($0.value)) }))
    }

    /// What the alerts are about, for titles: the group's label values
    /// (`disk_pct`), else the distinct alert names.
    static func groupName(_ notification: Notification) -> String {
        if !notification.groupLabels.isEmpty { return notification.groupLabels.map(\.value).joined(separator: " ") }
        var names: [String] = []
        for alert in notification.alerts where !names.contains(alert.name) { names.append(alert.name) }
        return names.joined(separator: ", ")
    }

    /// `[FIRING:3] disk_pct` or `[RESOLVED] disk_pct`: Alertmanager's default title.
    static func title(_ notification: Notification) -> String {
        let status = notification.status == .firing ? "FIRING:\(notification.firing.count)" : "RESOLVED"
        let name = groupName(notification)
        return "[" + status + "]" + (name.isEmpty ? "" : " " + name)
    }

    /// A host name as one URL path segment: unreserved characters kept,
    /// everything else percent-encoded (names come from hosts themselves).
    static func pathSegment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out += "%"
                out.unicodeScalars.append(hex[Int(byte >> 4)])
                out.unicodeScalars.append(hex[Int(byte & 0x0F)])
            }
        }
        return out
    }
}
