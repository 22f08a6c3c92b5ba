public import PilotCore

/// What must survive a restart (or a kill -9): the groups with their
/// alerts, timers and what each last notified, the silences, the
/// pass-through receivers' firing alerts, and the id counter. Saved in the
/// same transaction as the notifications a change put in the outbox.
extension RouterCore {
    public var state: JSONValue {
        func labels(_ list: [Label]) -> JSONValue { .object(JSONObject(list.map { ($0.name, .string($0.value)) })) }
        return .object(JSONObject([
            ("version", .number(1)), ("counter", .number(Double(counter))), ("last_tick", .number(Double(lastTick))),
            ("groups", .array(groups.keys.sorted().map { key in
                let group = groups[key]!
                var object = JSONObject([
                    ("receiver", .string(group.receiver)), ("group_key", .string(group.groupKey)), ("labels", labels(group.labels)),
                    ("next_flush", .number(Double(group.nextFlush))),
                    ("alerts", .array(group.alerts.values.sorted { $0.fingerprint < $1.fingerprint }.map { .object($0.record) })),
                    ("notified", .object(JSONObject(group.notified.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))),
                ])
                if let at = group.notifiedAt { object["notified_at"] = .number(Double(at)) }
                return .object(object)
            })),
            ("hosts_down", .array(hostsDown.sorted().map { .string($0) })),
            ("silences", .array(silences.values.sorted { $0.id < $1.id }.map { .object($0.record) })),
            ("forwarded", .object(JSONObject(forwarded.sorted { $0.key < $1.key }.map { receiver, alerts in
                (receiver, .array(alerts.values.sorted { $0.fingerprint < $1.fingerprint }.map { .object($0.record) }))
            }))),
            ("resend_at", .object(JSONObject(resendAt.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
        ]))
    }

    /// Restores a saved state under (possibly changed) configuration:
    /// groups of receivers that no longer exist are dropped.
    public init(config: Config, idPrefix: String, restoring state: JSONValue) throws(ParseError) {
        self.init(config: config, idPrefix: idPrefix)
        guard state["version"]?.doubleValue == 1, case .array(let groupItems)? = state["groups"] else {
            throw ParseError("router state", "", "not a router state of version 1")
        }
        counter = state["counter"]?.int64Value ?? 0
        lastTick = state["last_tick"]?.int64Value ?? 0
        let names = Set(config.receivers.filter { $0.resend == nil }.map(\.name))
        for item in groupItems {
            guard let receiver = item["receiver"]?.stringValue, let groupKey = item["group_key"]?.stringValue,
                  let nextFlush = item["next_flush"]?.int64Value, case .array(let alertItems)? = item["alerts"] else {
                throw ParseError("router state", item["group_key"]?.stringValue ?? "?", "a group is incomplete")
            }
            guard names.contains(receiver) else { continue }
            var group = Group(receiver: receiver, groupKey: groupKey, labels: Self.labels(item["labels"]), nextFlush: nextFlush)
            for alertItem in alertItems {
                let alert = try AlertEvent(record: alertItem)
                group.alerts[alert.fingerprint] = alert
            }
            if case .object(let notified)? = item["notified"] {
                for member in notified { if let severity = member.value.stringValue { group.notified[member.key] = severity } }
            }
            group.notifiedAt = item["notified_at"]?.int64Value
            let key = receiver + "\u{1F}" + groupKey
            groups[key] = group
            for fingerprint in group.alerts.keys { memberships[fingerprint, default: []].insert(key) }
        }
        if case .array(let hosts)? = state["hosts_down"] { hostsDown = Set(hosts.compactMap(\.stringValue)) }
        if case .array(let items)? = state["silences"] {
            for item in items {
                let silence = try Silence(record: item)
                silences[silence.id] = silence
            }
        }
        let passThrough = Set(config.receivers.filter { $0.resend != nil }.map(\.name))
        if case .object(let receivers)? = state["forwarded"] {
            for member in receivers where passThrough.contains(member.key) {
                guard case .array(let items) = member.value else { continue }
                for item in items {
                    let alert = try AlertEvent(record: item)
                    forwarded[member.key, default: [:]][alert.fingerprint] = alert
                }
            }
        }
        if case .object(let times)? = state["resend_at"] {
            for member in times where passThrough.contains(member.key) { resendAt[member.key] = member.value.int64Value }
        }
    }

    private static func labels(_ value: JSONValue?) -> [Label] {
        guard case .object(let object)? = value else { return [] }
        return object.compactMap { member in member.value.stringValue.map { Label(member.key, $0) } }
    }
}
