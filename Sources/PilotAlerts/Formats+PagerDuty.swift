public import PilotCore

extension Formats {
    /// PagerDuty's limit on an event's summary, in characters.
    static let pagerDutySummaryLimit = 1024

    /// The severities Events API v2 accepts.
    static let pagerDutySeverities: Set<String> = ["critical", "error", "warning", "info"]

    /// PagerDuty Events API v2 events, one per alert, deduplicated by the
    /// alert's fingerprint so that PagerDuty keeps one incident per alert
    /// however often it is re-sent, and a resolve closes exactly that one.
    ///
    /// A resolve carries only what PagerDuty requires (routing key, action,
    /// dedup key). `severityOverride` (the receiver's `severity=` option)
    /// replaces every alert's severity when it is one PagerDuty knows.
    public static func pagerDuty(_ notification: Notification, routingKey: String, context: FormatContext,
                                 severityOverride: String?) -> [JSONValue] {
        notification.alerts.map { alert in
            var event = JSONObject([
                ("routing_key", .string(routingKey)),
                ("event_action", .string(alert.status == .firing ? "trigger" : "resolve")),
                ("dedup_key", .string(alert.fingerprint)),
            ])
            guard alert.status == .firing else { return .object(event) }
            event["payload"] = .object(JSONObject([
                ("summary", .string(limited(summary(alert, in: notification, context: context), to: pagerDutySummaryLimit))),
                ("severity", .string(pagerDutySeverity(alert.severity, override: severityOverride))),
                ("source", .string(alert.host)),
                ("component", .string(alert.name)),
                ("group", .string(notification.groupKey)),
                ("class", .string(alert.name)),
                ("timestamp", .string(TimeText.rfc3339(alert.startsAt))),
                ("custom_details", .object(pagerDutyDetails(alert, notification: notification))),
            ]))
            event["client"] = .string("pilot")
            if let base = context.base { event["client_url"] = .string(base) }
            return .object(event)
        }
    }

    /// Ours are `warning` and `critical`; PagerDuty's four pass through, and
    /// anything else is a `warning` (paging someone needs `critical`).
    static func pagerDutySeverity(_ severity: String, override: String?) -> String {
        if let override, pagerDutySeverities.contains(override.lowercased()) { return override.lowercased() }
        let lowered = severity.lowercased()
        return pagerDutySeverities.contains(lowered) ? lowered : "warning"
    }

    /// value, threshold, every label, and the notification's id (so a
    /// responder can find the delivery in the router's log). A series label
    /// named like one of the fixed keys does not replace it.
    private static func pagerDutyDetails(_ alert: AlertEvent, notification: Notification) -> JSONObject {
        var details = JSONObject()
        if let value = alert.value { details["value"] = .number(value) }
        if let threshold = alert.threshold { details["threshold"] = .number(threshold) }
        let reserved: Set<String> = ["value", "threshold", "notification_id"]
        for label in alert.allLabels where !reserved.contains(label.name) { details[label.name] = .string(label.value) }
        details["notification_id"] = .string(notification.id)
        return details
    }

    /// At most `limit` Unicode scalars, the last an ellipsis when cut (a
    /// scalar limit is never more than PagerDuty's character count).
    static func limited(_ text: String, to limit: Int) -> String {
        guard text.unicodeScalars.count > limit else { return text }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: text.unicodeScalars.prefix(limit - 1))
        out.append("…")
        return String(out)
    }
}
