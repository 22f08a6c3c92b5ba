public import PilotCore

extension Formats {
    /// Lines of alerts an attachment lists before it says how many more: a
    /// Slack message stays readable on a phone, and under Slack's size limit.
    static let slackLinesShown = 20

    /// Slack's colour bars: red for critical, amber for any other firing
    /// severity, green for resolved.
    static let slackColors = (critical: "#d63232", warning: "#f2a900", resolved: "#2eb67d")

    /// The JSON for a Slack incoming webhook.
    ///
    /// `text` is what the phone notification shows: the single alert's
    /// summary, or Alertmanager's default title (`[FIRING:3] disk_pct`).
    /// Then one attachment for the firing alerts and one for those that
    /// resolved, each with its colour, a line per alert, and the alert's
    /// fields when the notification holds just one. `channel` overrides the
    /// webhook's own channel, and only when given.
    public static func slack(_ notification: Notification, context: FormatContext, channel: String?) -> JSONValue {
        var object = JSONObject()
        if let channel, !channel.isEmpty { object["channel"] = .string(channel) }
        let headline: String
        if notification.isTest { headline = testSummary(context: context) }
        else if notification.alerts.count == 1 { headline = summary(notification.alerts[0]) }
        else { headline = title(notification) }
        object["text"] = .string(slackEscaped(headline))

        var attachments: [JSONValue] = []
        for (status, alerts) in [(AlertEvent.Status.firing, notification.firing), (.resolved, notification.resolved)] where !alerts.isEmpty {
            attachments.append(.object(slackAttachment(status: status, alerts: alerts, notification: notification, context: context)))
        }
        object["attachments"] = .array(attachments)
        return .object(object)
    }

    private static func slackAttachment(status: AlertEvent.Status, alerts: [AlertEvent], notification: Notification,
                                        context: FormatContext) -> JSONObject {
        let name = groupName(notification)
        let title = "[\(status == .firing ? "FIRING" : "RESOLVED"):\(alerts.count)]" + (name.isEmpty ? "" : " " + name)
        let color = status == .resolved ? slackColors.resolved
            : alerts.contains { $0.severity == "critical" } ? slackColors.critical : slackColors.warning
        var lines = alerts.prefix(slackLinesShown).map { slackEscaped(summary($0, in: notification, context: context)) }
        if alerts.count > slackLinesShown { lines.append("… and \(alerts.count - slackLinesShown) more") }

        var object = JSONObject([
            ("fallback", .string(slackEscaped(title))),
            ("color", .string(color)),
            ("title", .string(slackEscaped(title))),
        ])
        // The host's page when the alerts are all one host's, else the dashboard.
        if let base = context.base {
            let hosts = Set(alerts.map(\.host))
            object["title_link"] = .string(hosts.count == 1 ? context.hostURL(alerts[0].host) : base)
        }
        object["text"] = .string(lines.joined(separator: "\n"))
        if notification.alerts.count == 1, let alert = alerts.first {
            object["fields"] = .array(slackFields(alert))
        }
        object["footer"] = .string(slackEscaped("pilot alert-router on " + context.sender))
        object["ts"] = .number(Double(notification.createdAt))
        return object
    }

    /// host, metric, value, threshold (with its direction) and since, each
    /// short so that Slack sets them two to a row. host_down and health
    /// carry no measurement (their value is seconds of silence, or 1), so
    /// they show no value or threshold.
    private static func slackFields(_ alert: AlertEvent) -> [JSONValue] {
        var fields: [(String, String)] = [("host", alert.host), ("metric", alert.name)]
        let measured = alert.name != "host_down" && alert.name != "health"
        if measured, let value = alert.value { fields.append(("value", valueText(value, metric: alert.name))) }
        if measured, let threshold = alert.threshold {
            fields.append(("threshold", comparison(alert) + " " + trimmed(threshold) + (alert.name.hasSuffix("_pct") ? " %" : "")))
        }
        fields.append(("since", TimeText.rfc3339(alert.startsAt)))
        return fields.map { title, value in
            .object(JSONObject([("title", .string(title)), ("value", .string(slackEscaped(value))), ("short", .bool(true))]))
        }
    }

    /// Slack reads `<…>` as links and mentions and `&` as an entity; a host
    /// name or label must not become one.
    static func slackEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(character)
            }
        }
        return out
    }
}
