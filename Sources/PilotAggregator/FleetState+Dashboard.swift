public import PilotCore

/// What the dashboard reads (docs/API.md): each host's state and since
/// when, its latest figures, checks, firing alerts and last hour, and
/// which hosts changed after a given change number.
extension FleetState {
    /// Each host's state at `now`: `online` if heard from within
    /// `downAfter` seconds, else `silent` while the registry still sees the
    /// node, `offline` when it does not (or reports it gone). A host that
    /// went quiet is so since it was last heard from.
    public mutating func refresh(now: Int64, downAfter: Int64) {
        for (name, host) in hosts {
            let state: HostState = if host.registryOnline == false {
                .offline
            } else if now - host.lastSeen < downAfter {
                .online
            } else {
                host.registryOnline == true ? .silent : .offline
            }
            guard state != host.state else { continue }
            seq += 1
            let change = seq
            update(name) { host in
                host.state = state
                host.stateSince = state == .online ? now : min(now, host.lastSeen)
                host.version = change
            }
        }
    }

    /// A notice the aggregator published: the host's history, the fleet's
    /// recent resolves, and a change for the host (its alerts changed).
    public mutating func noted(_ notice: AlertNotice) {
        if notice.status == "resolved" { Self.keep(&resolved, notice.payload) }
        guard let name = notice.payload["host"]?.stringValue, hosts[name] != nil else { return }
        seq += 1
        let change = seq
        update(name) { host in
            Self.keep(&host.notices, notice.payload)
            host.version = change
        }
    }

    mutating func update(_ name: String, _ body: (inout Host) -> Void) {
        guard var host = hosts.removeValue(forKey: name) else { return }
        body(&host)
        hosts[name] = host
    }

    static func keep(_ list: inout [JSONObject], _ item: JSONObject) {
        list.append(item)
        if list.count > noticesKept { list.removeFirst(list.count - noticesKept) }
    }

    /// The fullest mount of a `metrics/disk` message (the message's own
    /// `disk_pct` when it lists no mounts, as the guide's shell agent sends).
    public static func fullestDisk(_ payload: JSONObject) -> (pct: Double, mount: String?)? {
        var best: (pct: Double, mount: String?)?
        if case .array(let mounts)? = payload["mounts"] {
            for mount in mounts {
                guard let pct = mount["disk_pct"]?.doubleValue, pct.isFinite, pct > (best?.pct ?? -1) else { continue }
                best = (pct, mount["mount"]?.stringValue)
            }
        }
        if best == nil, let pct = payload["disk_pct"]?.doubleValue, pct.isFinite { best = (pct, nil) }
        return best
    }

    /// The hosts changed after `since` (all with `since` nil), by name.
    public func changed(after since: UInt64?) -> [(name: String, host: Host)] {
        hosts.filter { since == nil || $0.value.version > since! }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// `counts` of `/api/v1/hosts`: hosts, up, down (silent or offline), alerting.
    public func counts(alerting: Set<String>) -> JSONValue {
        let up = hosts.values.filter { $0.state == .online }.count
        return .object(JSONObject([
            ("hosts", .number(Double(hosts.count))), ("up", .number(Double(up))), ("down", .number(Double(hosts.count - up))),
            ("alerting", .number(Double(hosts.keys.filter(alerting.contains).count))),
        ]))
    }

    /// One host's summary: `fullSpark` gives its whole hour, else the newest minute.
    public func summary(_ name: String, _ host: Host, now: Int64, firing: [Alert], rules: [AlertRule], fullSpark: Bool) -> JSONObject {
        func number(_ kind: String, _ field: String) -> JSONValue {
            host.latest[kind]?[field]?.doubleValue.map(JSONValue.number) ?? .null
        }
        let disk = host.latest["metrics/disk"].flatMap(Self.fullestDisk)
        let checks: [JSONValue] = host.latest.filter { $0.key.hasPrefix("health/") }.sorted { $0.key < $1.key }.map { kind, payload in
            .object(JSONObject([
                ("name", .string(String(kind.dropFirst("health/".count)))), ("status", payload["status"] ?? .null),
                ("latency_ms", payload["latency_ms"] ?? .null), ("message", payload["message"] ?? .null),
            ]))
        }
        let alerts: [JSONValue] = firing.sorted { ($0.metric, $0.fingerprint) < ($1.metric, $1.fingerprint) }.map { alert in
            var row = JSONObject([
                ("metric", .string(alert.metric)), ("severity", .string(alert.severity.rawValue)), ("value", .number((alert.value * 10).rounded() / 10)),
                ("threshold", .number(alert.threshold)), ("since", .number(Double(alert.startsAt))), ("fingerprint", .string(alert.fingerprint)),
                ("labels", .object(JSONObject(alert.labels.map { ($0.0, .string($0.1)) }))),
            ])
            if let rule = rules.first(where: { $0.metric == alert.metric }) { row["comparison"] = .string(rule.comparison == .above ? "above" : "below") }
            return .object(row)
        }
        var load = number("metrics/load", "load1")
        if load == .null { load = number("metrics/cpu", "load") }
        return JSONObject([
            ("host", .string(name)), ("address", host.overlay.map(JSONValue.string) ?? .null), ("endpoint", host.address.map(JSONValue.string) ?? .null),
            ("tags", .array(host.tags.map { .string($0) })), ("state", .string(host.state.rawValue)), ("since", .number(Double(host.stateSince))),
            ("last_seen", .number(Double(host.lastSeen))),
            ("cpu", number("metrics/cpu", "cpu_pct")), ("mem", number("metrics/memory", "mem_pct")),
            ("disk", disk.map { .number($0.pct) } ?? .null), ("disk_mount", disk?.mount.map(JSONValue.string) ?? .null),
            ("load1", load), ("uptime_s", number("metrics/uptime", "uptime_sec")),
            ("checks", .array(checks)), ("alerts", .array(alerts)), ("spark", host.spark.json(now: now, newestOnly: !fullSpark)),
        ])
    }
}
