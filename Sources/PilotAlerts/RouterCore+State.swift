public import PilotCore

/// What must survive a restart (or a kill -9): the groups with their
/// alerts, timers and what each last notified; the pass-through receivers'
/// firing alerts; and a small rest (silences, hosts down, the id counter).
/// Kept as rows, one per group and per pass-through alert, so that a change
/// writes what changed, not every alert that fires (a fleet in a storm has
/// thousands); saved in the same transaction as the notifications it made.
extension RouterCore {
    public struct Snapshot: Sendable, Equatable {
        /// Version, counter, hosts down, silences, pass-through re-post times.
        public var meta: JSONValue
        /// By group key (receiver and Alertmanager's group key).
        public var groups: [String: JSONValue]
        /// By receiver and fingerprint: `{receiver, alert}`.
        public var forwarded: [String: JSONValue]
        public init(meta: JSONValue, groups: [String: JSONValue] = [:], forwarded: [String: JSONValue] = [:]) {
            self.meta = meta
            self.groups = groups
            self.forwarded = forwarded
        }
    }

    /// Rows to write since the last call: nil removes one.
    public struct Changes: Sendable {
        public var meta: JSONValue
        public var groups: [(key: String, value: JSONValue?)]
        public var forwarded: [(key: String, value: JSONValue?)]
    }

    /// Everything, as rows (for a first save and for tests).
    public var snapshot: Snapshot {
        Snapshot(meta: meta, groups: Dictionary(uniqueKeysWithValues: groups.map { ($0.key, Self.record($0.value)) }),
                 forwarded: Dictionary(uniqueKeysWithValues: forwarded.flatMap { receiver, alerts in
                     alerts.map { (receiver + "\u{1F}" + $0.key, Self.record(receiver: receiver, $0.value)) }
                 }))
    }

    /// What changed since the last call, and forgets it.
    public mutating func takeChanges() -> Changes {
        defer {
            dirtyGroups = []
            dirtyForwarded = []
        }
        let groupRows = dirtyGroups.sorted().map { key in (key: key, value: groups[key].map(Self.record)) }
        let forwardedRows = dirtyForwarded.sorted().map { key -> (key: String, value: JSONValue?) in
            let parts = key.split(separator: "\u{1F}", maxSplits: 1).map(String.init)
            let alert = parts.count == 2 ? forwarded[parts[0]]?[parts[1]] : nil
            return (key, alert.map { Self.record(receiver: parts[0], $0) })
        }
        return Changes(meta: meta, groups: groupRows, forwarded: forwardedRows)
    }

    /// Changes a failed commit did not save: they are written with the next.
    public mutating func keep(_ changes: Changes) {
        for row in changes.groups { dirtyGroups.insert(row.key) }
        for row in changes.forwarded { dirtyForwarded.insert(row.key) }
    }

    var meta: JSONValue {
        .object(JSONObject([
            ("version", .number(2)), ("counter", .number(Double(counter))), ("last_tick", .number(Double(lastTick))),
            ("hosts_down", .array(hostsDown.sorted().map { .string($0) })),
            ("silences", .array(silences.values.sorted { $0.id < $1.id }.map { .object($0.record) })),
            ("resend_at", .object(JSONObject(resendAt.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
        ]))
    }

    static func record(_ group: Group) -> JSONValue {
        var object = JSONObject([
            ("receiver", .string(group.receiver)), ("group_key", .string(group.groupKey)),
            ("labels", .object(JSONObject(group.labels.map { ($0.name, .string($0.value)) }))),
            ("next_flush", .number(Double(group.nextFlush))),
            ("alerts", .array(group.alerts.values.sorted { $0.fingerprint < $1.fingerprint }.map { .object($0.record) })),
            ("notified", .object(JSONObject(group.notified.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))),
        ])
        if let at = group.notifiedAt { object["notified_at"] = .number(Double(at)) }
        return .object(object)
    }

    static func record(receiver: String, _ alert: AlertEvent) -> JSONValue {
        .object(JSONObject([("receiver", .string(receiver)), ("alert", .object(alert.record))]))
    }

    /// Restores saved rows under (possibly changed) configuration: rows of
    /// receivers that no longer exist are dropped.
    public init(config: Config, idPrefix: String, restoring snapshot: Snapshot) throws(ParseError) {
        self.init(config: config, idPrefix: idPrefix)
        let meta = snapshot.meta
        guard meta["version"]?.doubleValue == 2 else { throw ParseError("router state", "", "not a router state of version 2") }
        counter = meta["counter"]?.int64Value ?? 0
        lastTick = meta["last_tick"]?.int64Value ?? 0
        let grouped = Set(config.receivers.filter { $0.resend == nil }.map(\.name))
        for (_, item) in snapshot.groups {
            guard let receiver = item["receiver"]?.stringValue, let groupKey = item["group_key"]?.stringValue,
                  let nextFlush = item["next_flush"]?.int64Value, case .array(let alertItems)? = item["alerts"] else {
                throw ParseError("router state", item["group_key"]?.stringValue ?? "?", "a group is incomplete")
            }
            guard grouped.contains(receiver) else { continue }
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
        if case .array(let hosts)? = meta["hosts_down"] { hostsDown = Set(hosts.compactMap(\.stringValue)) }
        if case .array(let items)? = meta["silences"] {
            for item in items {
                let silence = try Silence(record: item)
                silences[silence.id] = silence
            }
        }
        let passThrough = Set(config.receivers.filter { $0.resend != nil }.map(\.name))
        for (_, item) in snapshot.forwarded {
            guard let receiver = item["receiver"]?.stringValue, let alertItem = item["alert"] else {
                throw ParseError("router state", "", "a pass-through entry is incomplete")
            }
            guard passThrough.contains(receiver) else { continue }
            let alert = try AlertEvent(record: alertItem)
            forwarded[receiver, default: [:]][alert.fingerprint] = alert
        }
        if case .object(let times)? = meta["resend_at"] {
            for member in times where passThrough.contains(member.key) { resendAt[member.key] = member.value.int64Value }
        }
    }

    private static func labels(_ value: JSONValue?) -> [Label] {
        guard case .object(let object)? = value else { return [] }
        return object.compactMap { member in member.value.stringValue.map { Label(member.key, $0) } }
    }
}
