public import PilotCore

/// The latest of everything each host published: one payload per topic
/// kind (`metrics/cpu`, `health/webapp`, …) and when it was last heard.
/// Pure: the aggregator feeds it and renders the views from it.
public struct FleetState: Sendable {
    public struct Host: Sendable {
        public var latest: [String: JSONObject] = [:]
        public var lastSeen: Int64 = 0
        /// From the registry: the node's tags and whether it is online.
        public var tags: [String] = []
        public var registryOnline: Bool?
        /// The endpoint the registry last had for it (for host_down notices).
        public var address: String?
        /// Its overlay address, from the registry.
        public var overlay: String?
        /// What the dashboard shows: online, silent or offline, since when,
        /// and the fleet's change number when anything about it last changed.
        public var state = HostState.online
        public var stateSince: Int64 = 0
        public var version: UInt64 = 0
        public var spark = Sparkline()
        /// The notices published for it, oldest first (at most `noticesKept`).
        public var notices: [JSONObject] = []
    }

    public enum HostState: String, Sendable { case online, silent, offline }

    public internal(set) var hosts: [String: Host] = [:]
    public let maxHosts: Int
    /// Counts changes: each host records the number of its last one, so a
    /// client can ask for what changed after the number it has.
    public internal(set) var seq: UInt64 = 0
    /// The newest resolves published, oldest first (at most `noticesKept`).
    public internal(set) var resolved: [JSONObject] = []
    public static let noticesKept = 100

    public init(maxHosts: Int = 100_000) { self.maxHosts = maxHosts }

    public mutating func observe(topic: Topic, payload: JSONObject, now: Int64) {
        guard topic.levels.count >= 3, topic.levels[0] == "metrics" || topic.levels[0] == "health" else { return }
        let host = String(topic.levels[2])
        guard hosts[host] != nil || hosts.count < maxHosts else { return }
        let kind = "\(topic.levels[0])/\(topic.levels[1])"
        seq += 1
        var entry = hosts.removeValue(forKey: host) ?? Host(stateSince: now)
        entry.latest[kind] = payload
        entry.lastSeen = max(entry.lastSeen, now)
        entry.version = seq
        if entry.state != .online, entry.registryOnline != false {
            entry.state = .online
            entry.stateSince = now
        }
        // At the time it was measured, if that is believable.
        let at = payload["ts"]?.int64Value.map { min($0, now) } ?? now
        switch kind {
        case "metrics/cpu": if let value = payload["cpu_pct"]?.doubleValue { entry.spark.record(.cpu, value, at: at) }
        case "metrics/memory": if let value = payload["mem_pct"]?.doubleValue { entry.spark.record(.mem, value, at: at) }
        case "metrics/disk": if let fullest = Self.fullestDisk(payload) { entry.spark.record(.disk, fullest.pct, at: at) }
        default: break
        }
        hosts[host] = entry
    }

    /// The registry's word on a host (tags, presence); only for hosts that
    /// publish, so the registry's whole directory does not fill the table.
    public mutating func directory(host: String, tags: [String], online: Bool, address: String? = nil, overlay: String? = nil) {
        guard var entry = hosts[host] else { return }
        let before = (entry.tags, entry.registryOnline, entry.address, entry.overlay)
        entry.tags = tags
        entry.registryOnline = online
        if let address { entry.address = address }
        if let overlay { entry.overlay = overlay }
        if before != (entry.tags, entry.registryOnline, entry.address, entry.overlay) {
            seq += 1
            entry.version = seq
        }
        hosts[host] = entry
    }

    /// A notice with what a person on call wants beside the numbers: the
    /// rule's direction and duration (`above 95 for 2m`), and for
    /// `host_down` when the host was last heard and from where.
    public func enriched(_ notice: AlertNotice, rules: [AlertRule]) -> AlertNotice {
        var notice = notice
        guard let metric = notice.payload["metric"]?.stringValue else { return notice }
        if metric == "host_down", let host = notice.payload["host"]?.stringValue, let known = hosts[host] {
            if known.lastSeen > 0 { notice.payload["last_seen"] = .number(Double(known.lastSeen)) }
            if let address = known.address { notice.payload["last_address"] = .string(address) }
        } else if let rule = rules.first(where: { $0.metric == metric }) {
            notice.payload["comparison"] = .string(rule.comparison == .above ? "above" : "below")
            if rule.forSeconds > 0 { notice.payload["for_s"] = .number(Double(rule.forSeconds)) }
        }
        return notice
    }

    func number(_ host: Host, _ kind: String, _ field: String) -> Double? {
        host.latest["metrics/\(kind)"]?[field]?.doubleValue
    }

    /// The seed's fleet table: host, cpu, mem, disk, seen.
    public func table(now: Int64) -> String {
        let width = max(16, (hosts.keys.map(\.count).max() ?? 0) + 2)
        func pad(_ text: String, _ size: Int) -> String { text + String(repeating: " ", count: max(1, size - text.count)) }
        func pct(_ value: Double?) -> String { value.map { String(format1: $0) + "%" } ?? "-" }
        var lines = [pad("HOST", width) + pad("CPU", 9) + pad("MEM", 9) + pad("DISK", 9) + "SEEN"]
        for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
            let ago = now - host.lastSeen
            lines.append(pad(name, width) + pad(pct(number(host, "cpu", "cpu_pct")), 9) + pad(pct(number(host, "memory", "mem_pct")), 9)
                         + pad(pct(number(host, "disk", "disk_pct")), 9) + "\(ago)s ago")
        }
        return lines.joined(separator: "\n")
    }

    /// `/api/hosts`: every host with its latest messages, last seen and up.
    public func hostsJSON(now: Int64, downAfter: Int64) -> JSONValue {
        .array(hosts.sorted(by: { $0.key < $1.key }).map { name, host in
            .object(JSONObject([
                ("host", .string(name)), ("up", .bool(now - host.lastSeen < downAfter && host.registryOnline != false)),
                ("last_seen", .number(Double(host.lastSeen))), ("tags", .array(host.tags.map { .string($0) })),
                ("registry", host.registryOnline.map { .string($0 ? "online" : "offline") } ?? .null),
                ("latest", .object(JSONObject(host.latest.sorted { $0.key < $1.key }.map { ($0.key, .object($0.value)) }))),
            ]))
        })
    }

    /// `/metrics` in the Prometheus text format: every numeric field of the
    /// latest messages as a gauge `pilot_FIELD{host="…"[,mount="…"]}`, each
    /// check's state as `pilot_check_ok`, and `pilot_host_up`.
    public func prometheus(now: Int64, downAfter: Int64, firing: [Alert]) -> String {
        var series: [String: [String]] = [:]
        func add(_ name: String, _ labels: [(String, String)], _ value: Double) {
            let rendered = labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            series[name, default: []].append("\(name){\(rendered)} \(Self.format(value))")
        }
        for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
            add("pilot_host_up", [("host", name)], now - host.lastSeen < downAfter ? 1 : 0)
            add("pilot_last_seen_seconds", [("host", name)], Double(host.lastSeen))
            for (kind, payload) in host.latest.sorted(by: { $0.key < $1.key }) {
                if kind.hasPrefix("health/") {
                    let check = String(kind.dropFirst("health/".count))
                    add("pilot_check_ok", [("host", name), ("check", check)], payload["status"]?.stringValue == "ok" ? 1 : 0)
                    if let latency = payload["latency_ms"]?.doubleValue { add("pilot_check_latency_ms", [("host", name), ("check", check)], latency) }
                    continue
                }
                for sample in Sample.extract(host: name, payload: payload, receivedAt: now * 1000) {
                    guard let metric = Self.metricName(sample.metric) else { continue }
                    add(metric, sample.labels, sample.value)
                }
            }
        }
        for alert in firing {
            add("pilot_alert_firing", [("host", alert.host), ("metric", alert.metric), ("severity", alert.severity.rawValue)] + alert.labels, 1)
        }
        var out = ""
        for (name, lines) in series.sorted(by: { $0.key < $1.key }) {
            out += "# HELP \(name) \(Self.help(name))\n# TYPE \(name) gauge\n"
            for line in lines { out += line + "\n" }
        }
        return out
    }

    static func help(_ name: String) -> String {
        switch name {
        case "pilot_host_up": "1 if the host was heard from recently, else 0."
        case "pilot_last_seen_seconds": "Unix time the host was last heard from."
        case "pilot_check_ok": "1 if the service check is ok, else 0."
        case "pilot_check_latency_ms": "The service check's latency in milliseconds."
        case "pilot_alert_firing": "1 for each alert firing now."
        default: "The field \(name.dropFirst(6)) of the hosts' latest pilot agent messages."
        }
    }

    /// `pilot_` and the field, if it is a valid Prometheus name.
    static func metricName(_ field: String) -> String? {
        guard !field.isEmpty, field.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }) else { return nil }
        return "pilot_" + field
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

extension String {
    /// One decimal, like the seed's table (`42.1`).
    init(format1 value: Double) {
        let tenths = (value * 10).rounded()
        let whole = Int64(tenths / 10), fraction = Int64(abs(tenths).truncatingRemainder(dividingBy: 10))
        self = (tenths < 0 && whole == 0 ? "-" : "") + "\(whole).\(fraction)"
    }
}
