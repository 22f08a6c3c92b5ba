public import PilotCore

extension Formats {
    /// Alertmanager's webhook payload, version 4, key for key, so anything
    /// written for Alertmanager's webhook receiver reads ours unchanged.
    ///
    /// `maxAlerts` > 0 keeps the first so many alerts and counts the rest in
    /// `truncatedAlerts`; status and the common labels still describe all of
    /// them, as Alertmanager's do. The notification's id is not in the body
    /// (that would add a key); the sender puts it in `X-Pilot-Notification-Id`.
    public static func webhook(_ notification: Notification, context: FormatContext, maxAlerts: Int) -> JSONValue {
        let shown = maxAlerts > 0 ? Array(notification.alerts.prefix(maxAlerts)) : notification.alerts
        let alerts: [JSONValue] = shown.map { alert in
            .object(JSONObject([
                ("status", .string(alert.status.rawValue)),
                ("labels", labelObject(alert.allLabels)),
                ("annotations", .object(annotations(alert, summary: summary(alert, in: notification, context: context)))),
                ("startsAt", .string(TimeText.rfc3339(alert.startsAt))),
                ("endsAt", .string(alert.status == .firing ? TimeText.zeroTime : TimeText.rfc3339(resolvedAt(alert)))),
                ("generatorURL", .string(context.hostURL(alert.host))),
                ("fingerprint", .string(alert.fingerprint)),
            ]))
        }
        return .object(JSONObject([
            ("receiver", .string(notification.receiver)),
            ("status", .string(notification.status.rawValue)),
            ("alerts", .array(alerts)),
            ("groupLabels", labelObject(notification.groupLabels)),
            ("commonLabels", labelObject(notification.commonLabels)),
            ("commonAnnotations", .object(commonAnnotations(notification, context: context))),
            ("externalURL", .string(context.base ?? "")),
            ("version", .string("4")),
            ("groupKey", .string(notification.groupKey)),
            ("truncatedAlerts", .number(Double(notification.alerts.count - shown.count))),
        ]))
    }

    /// What an `exec` receiver reads on its standard input: the webhook
    /// payload (all alerts) and a newline, so `jq` and line readers both work.
    public static func execInput(_ notification: Notification, context: FormatContext) -> [UInt8] {
        Array((webhook(notification, context: context, maxAlerts: 0).description + "\n").utf8)
    }

    /// The body of Alertmanager's `POST /api/v2/alerts`, for a router that
    /// forwards to an existing Alertmanager.
    ///
    /// A firing alert's `endsAt` is `now + 4 × resend`, as Prometheus sends
    /// it: Alertmanager resolves the alert by itself if the router goes
    /// quiet, and every resend pushes the end further out. A resolved alert
    /// ends when it resolved, which resolves it there at once. A resend of
    /// 0 or less counts as Alertmanager's default, a minute.
    public static func alertmanagerAlerts(_ alerts: [AlertEvent], context: FormatContext, now: Int64, resendSeconds: Int64) -> JSONValue {
        .array(alerts.map { alert in
            let end = alert.status == .firing ? now + 4 * (resendSeconds > 0 ? resendSeconds : 60) : resolvedAt(alert)
            return .object(JSONObject([
                ("labels", labelObject(alert.allLabels)),
                ("annotations", .object(annotations(alert, summary: summary(alert)))),
                ("startsAt", .string(TimeText.rfc3339(alert.startsAt))),
                ("endsAt", .string(TimeText.rfc3339(end))),
                ("generatorURL", .string(context.hostURL(alert.host))),
            ]))
        })
    }

    /// Alertmanager's annotations are strings: the summary line, the value
    /// and threshold when the alert has them, and a sentence for email-like
    /// templates (`description`).
    static func annotations(_ alert: AlertEvent, summary: String) -> JSONObject {
        var object = JSONObject([("summary", .string(summary))])
        if let value = alert.value { object["value"] = .string(trimmed(value)) }
        if let threshold = alert.threshold { object["threshold"] = .string(trimmed(threshold)) }
        object["description"] = .string(description(alert))
        return object
    }

    /// Annotations every alert has with the same value, in the first's order.
    static func commonAnnotations(_ notification: Notification, context: FormatContext) -> JSONObject {
        let all = notification.alerts.map { annotations($0, summary: summary($0, in: notification, context: context)) }
        guard let first = all.first else { return JSONObject() }
        return JSONObject(first.members.filter { member in all.dropFirst().allSatisfy { $0[member.key] == member.value } }.map { ($0.key, $0.value) })
    }

    /// One sentence with the dates in full, e.g. `disk_pct on db-01 on / is
    /// 97.1 %, above the critical threshold 95 since 2026-12-01T23:00:00Z.`
    static func description(_ alert: AlertEvent) -> String {
        let since = TimeText.rfc3339(alert.startsAt)
        let resolved = alert.status == .resolved
        let end = TimeText.rfc3339(resolvedAt(alert))
        let lasted = TimeText.duration(resolvedAt(alert) - alert.startsAt)
        switch alert.name {
        case "host_down":
            if resolved { return "\(alert.host) was heard again at \(end), after \(lasted) down." }
            let address = alert.lastAddress.map { ", last from \($0)" } ?? ""
            return "\(alert.host) has sent nothing since \(TimeText.rfc3339(silentSince(alert)))\(address)."
        case "health":
            let check = alert.label("check").map { "health check \($0)" } ?? "a health check"
            if resolved { return "The \(check) on \(alert.host) passes again since \(end), after failing for \(lasted)." }
            return "The \(check) on \(alert.host) is failing (\(alert.severity)) since \(since)."
        default:
            let subject = ([alert.name, "on", alert.host] + labelPhrases(alert)).joined(separator: " ")
            let value = alert.value.map { " is " + valueText($0, metric: alert.name) } ?? ""
            if resolved { return "\(subject) resolved at \(end) after \(lasted)" + (value.isEmpty ? "." : ";" + value + " now.") }
            let threshold = alert.threshold.map { ", \(comparison(alert)) the \(alert.severity) threshold \(trimmed($0))" } ?? ""
            return subject + (value.isEmpty ? " breaches" : value) + threshold + " since \(since)."
        }
    }
}
