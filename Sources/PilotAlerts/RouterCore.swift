public import PilotCore

/// What becomes of alerts between the hub and the outbox, as a pure state
/// machine with an injected clock (Unix seconds): alerts and ticks in,
/// notifications out. Alertmanager's model, on one line per route:
///
/// - Routing: `RoutingTable` names the receivers of each alert.
/// - Grouping: a receiver's alerts that share the `groupBy` labels travel
///   together. A new group waits `groupWait` for company, then is flushed
///   every `groupInterval`; a flush notifies when a firing alert is new (or
///   changed severity) since the last notification, when an alert the group
///   notified as firing has resolved, or when `repeatInterval` has passed
///   with alerts still firing.
/// - Inhibition: a host's firing `host_down` holds back that host's other
///   alerts; they are notified when it resolves, if they still fire.
/// - Silences: a matching alert is not notified while the silence lasts;
///   when it ends, the alert's groups flush at once.
/// - Pass-through receivers (an existing Alertmanager) get every alert at
///   once, ungrouped, and its firing alerts again every `resend` seconds, so
///   that Alertmanager's resolve timeout never ends one that still fires.
public struct RouterCore: Sendable {
    public struct Timing: Sendable, Equatable {
        public var groupWait: Int64 = 30
        public var groupInterval: Int64 = 300
        public var repeatInterval: Int64 = 4 * 3600
        public init() {}
    }

    public struct Receiver: Sendable, Equatable {
        public var name: String
        public var sendResolved = true
        /// Pass-through (the alertmanager kind): re-posts firing alerts this often.
        public var resend: Int64?
        public init(name: String, sendResolved: Bool = true, resend: Int64? = nil) {
            self.name = name
            self.sendResolved = sendResolved
            self.resend = resend
        }
    }

    public struct Config: Sendable {
        public var table: RoutingTable
        public var receivers: [Receiver]
        /// Label names; `metric` is `alertname`; `...` makes each alert its own group.
        public var groupBy: [String] = ["alertname"]
        public var timing = Timing()
        public init(table: RoutingTable, receivers: [Receiver]) {
            self.table = table
            self.receivers = receivers
        }
    }

    struct Group: Sendable {
        var receiver: String
        var groupKey: String
        var labels: [Label]
        var alerts: [String: AlertEvent] = [:]
        var nextFlush: Int64
        /// Firing alerts in the last notification, with their severity.
        var notified: [String: String] = [:]
        var notifiedAt: Int64?
    }

    public let config: Config
    var groups: [String: Group] = [:]
    /// fingerprint → keys of the groups that hold it.
    var memberships: [String: Set<String>] = [:]
    /// Firing `host_down` hosts.
    var hostsDown: Set<String> = []
    public internal(set) var silences: [String: Silence] = [:]
    /// Pass-through receivers: their firing alerts, and when to post them again.
    var forwarded: [String: [String: AlertEvent]] = [:]
    var resendAt: [String: Int64] = [:]
    /// Notification ids: this router's prefix and a counter, both kept.
    public let idPrefix: String
    var counter: Int64 = 0
    var lastTick: Int64 = 0
    /// What changed since `takeChanges()`: groups and pass-through entries
    /// by key, so a commit writes those rows only, however many fire.
    var dirtyGroups: Set<String> = []
    var dirtyForwarded: Set<String> = []

    public init(config: Config, idPrefix: String) {
        self.config = config
        self.idPrefix = idPrefix
    }

    public var groupCount: Int { groups.count }
    public var pendingAlerts: Int { groups.values.reduce(0) { $0 + $1.alerts.count } }

    /// An alert from the hub, with its host's tags. Pass-through receivers'
    /// notifications come back at once; grouped ones from `tick`.
    public mutating func receive(_ alert: AlertEvent, tags: [String], now: Int64) -> [Notification] {
        if alert.name == "host_down" {
            if alert.status == .firing { hostsDown.insert(alert.host) } else { hostsDown.remove(alert.host) }
        }
        // Groups that hold it already see its new state, wherever it routes now,
        // so a resolve reaches every group that notified the alert firing.
        for key in memberships[alert.fingerprint] ?? [] {
            groups[key]?.alerts[alert.fingerprint] = alert
            dirtyGroups.insert(key)
        }
        var out: [Notification] = []
        for destination in config.table.destinations(alert, tags: tags) {
            guard let receiver = config.receivers.first(where: { $0.name == destination.receiver }) else { continue }
            if let resend = receiver.resend {
                out.append(notification(receiver.name, groupKey: "{}:{alertname=\"\(alert.name)\"}", labels: [], alerts: [alert], now: now))
                dirtyForwarded.insert(receiver.name + "\u{1F}" + alert.fingerprint)
                if alert.status == .firing {
                    forwarded[receiver.name, default: [:]][alert.fingerprint] = alert
                    if resendAt[receiver.name] == nil { resendAt[receiver.name] = now + resend }
                } else {
                    forwarded[receiver.name]?[alert.fingerprint] = nil
                }
                continue
            }
            let labels = groupLabels(alert)
            let matchers = destination.route < config.table.routes.count ? config.table.routes[destination.route].matchers : []
            let groupKey = (matchers.isEmpty ? "{}" : "{}/{\(matchers.map(\.description).joined(separator: ","))}")
                + ":{" + labels.map { "\($0.name)=\"\($0.value)\"" }.joined(separator: ", ") + "}"
            let key = receiver.name + "\u{1F}" + groupKey
            dirtyGroups.insert(key)
            if groups[key] != nil {
                groups[key]!.alerts[alert.fingerprint] = alert
            } else {
                guard alert.status == .firing else { continue } // nothing was notified of it here
                groups[key] = Group(receiver: receiver.name, groupKey: groupKey, labels: labels, alerts: [alert.fingerprint: alert],
                                    nextFlush: now + config.timing.groupWait)
            }
            memberships[alert.fingerprint, default: []].insert(key)
        }
        return out
    }

    /// Time passing: groups due, silences ending, pass-through re-posts.
    public mutating func tick(now: Int64, tags: (String) -> [String] = { _ in [] }) -> [Notification] {
        // A silence that ended since the last tick: its alerts' groups flush now.
        let ended = silences.values.filter { $0.endsAt <= now && $0.endsAt > lastTick }
        for silence in ended {
            for (key, group) in groups where group.alerts.values.contains(where: { silence.matches($0, tags: tags($0.host)) }) {
                groups[key]!.nextFlush = min(group.nextFlush, now)
                dirtyGroups.insert(key)
            }
        }
        silences = silences.filter { $0.value.endsAt > now - 86_400 } // ended a day ago: forgotten
        lastTick = now
        var out: [Notification] = []
        for key in groups.compactMap({ $0.value.nextFlush <= now ? $0.key : nil }).sorted() {
            if let notification = flush(key, now: now, tags: tags) { out.append(notification) }
        }
        for receiver in config.receivers {
            guard let resend = receiver.resend, let due = resendAt[receiver.name], due <= now else { continue }
            let firing = (forwarded[receiver.name] ?? [:]).values.sorted { $0.fingerprint < $1.fingerprint }
            if firing.isEmpty {
                resendAt[receiver.name] = nil
            } else {
                out.append(notification(receiver.name, groupKey: "{}:{resend}", labels: [], alerts: firing, now: now))
                resendAt[receiver.name] = now + resend
            }
        }
        return out
    }

    /// When `tick` next has anything to do (for a caller that sleeps).
    public var nextDue: Int64? {
        (groups.values.map(\.nextFlush) + resendAt.values + silences.values.map(\.endsAt).filter { $0 > lastTick }).min()
    }

    public func isSilenced(_ alert: AlertEvent, tags: [String], now: Int64) -> Bool {
        silences.values.contains { $0.isActive(at: now) && $0.matches(alert, tags: tags) }
    }

    public func isInhibited(_ alert: AlertEvent) -> Bool { alert.name != "host_down" && hostsDown.contains(alert.host) }

    public mutating func addSilence(_ silence: Silence) { silences[silence.id] = silence }

    /// Ends a silence now; false when there is no such silence.
    public mutating func expireSilence(_ id: String, now: Int64) -> Bool {
        guard var silence = silences[id] else { return false }
        if silence.endsAt > now { silence.endsAt = now }
        silences[id] = silence
        return true
    }

    /// A test notification for one receiver, outside any group.
    public mutating func testNotification(receiver: String, now: Int64) -> Notification {
        let alert = AlertEvent(fingerprint: "test", status: .firing, name: "pilot_test", host: "pilot", severity: "warning",
                               value: 1, threshold: 0, startsAt: now, at: now)
        var made = notification(receiver, groupKey: "{}:{alertname=\"pilot_test\"}", labels: [Label("alertname", "pilot_test")], alerts: [alert], now: now)
        made.isTest = true
        return made
    }

    private mutating func flush(_ key: String, now: Int64, tags: (String) -> [String]) -> Notification? {
        guard var group = groups[key] else { return nil }
        dirtyGroups.insert(key)
        let receiver = config.receivers.first { $0.name == group.receiver }
        let sorted = group.alerts.values.sorted { ($0.host, $0.fingerprint) < ($1.host, $1.fingerprint) }
        let firing = sorted.filter { $0.status == .firing && !isInhibited($0) && !isSilenced($0, tags: tags($0.host), now: now) }
        let resolved = sorted.filter { $0.status == .resolved && group.notified[$0.fingerprint] != nil && receiver?.sendResolved != false }
        let news = firing.contains { group.notified[$0.fingerprint] != $0.severity }
        let due: Bool
        if let notifiedAt = group.notifiedAt {
            due = news || !resolved.isEmpty || (!firing.isEmpty && now - notifiedAt >= config.timing.repeatInterval)
        } else {
            due = !firing.isEmpty
        }
        var made: Notification?
        if due {
            made = notification(group.receiver, groupKey: group.groupKey, labels: group.labels, alerts: firing + resolved, now: now)
            group.notified = Dictionary(firing.map { ($0.fingerprint, $0.severity) }, uniquingKeysWith: { a, _ in a })
            group.notifiedAt = now
        } else {
            // A firing alert held back now (silenced, inhibited) is news again later.
            group.notified = group.notified.filter { entry in firing.contains { $0.fingerprint == entry.key } }
        }
        for alert in sorted where alert.status == .resolved {
            group.alerts[alert.fingerprint] = nil
            memberships[alert.fingerprint]?.remove(key)
            if memberships[alert.fingerprint]?.isEmpty == true { memberships[alert.fingerprint] = nil }
        }
        if group.alerts.isEmpty {
            groups[key] = nil
        } else {
            group.nextFlush = now + config.timing.groupInterval
            groups[key] = group
        }
        return made
    }

    private func groupLabels(_ alert: AlertEvent) -> [Label] {
        if config.groupBy.contains("...") { return alert.allLabels }
        return config.groupBy.compactMap { name in
            let canonical = name == "metric" ? "alertname" : name
            return alert.label(canonical).map { Label(canonical, $0) }
        }
    }

    private mutating func notification(_ receiver: String, groupKey: String, labels: [Label], alerts: [AlertEvent], now: Int64) -> Notification {
        counter += 1
        return Notification(id: "\(idPrefix)-\(counter)", receiver: receiver, groupKey: groupKey, groupLabels: labels, alerts: alerts, createdAt: now)
    }
}
