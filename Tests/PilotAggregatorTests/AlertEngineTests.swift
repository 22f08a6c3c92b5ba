@testable import PilotAggregator
import PilotCore
import Testing

/// Drives an engine with the agent's messages on an injected clock.
struct Timeline {
    var engine: AlertEngine
    var now: Int64 = 1_764_100_000
    var notices: [AlertNotice] = []

    init(_ options: AlertEngine.Options = .init()) { engine = AlertEngine(options: options) }

    mutating func disk(_ host: String, _ pct: Double, mount: String = "/", after seconds: Int64 = 30) -> [AlertNotice] {
        now += seconds
        let payload = JSONObject([
            ("host", .string(host)), ("disk_pct", .number(pct)),
            ("mounts", .array([.object(JSONObject([("mount", .string(mount)), ("disk_pct", .number(pct))]))])), ("ts", .number(Double(now))),
        ])
        let out = engine.observe(topic: try! Topic("metrics/disk/\(host)"), payload: payload, now: now) + engine.tick(now: now)
        notices += out
        return out
    }

    mutating func cpu(_ host: String, _ pct: Double, after seconds: Int64 = 30) -> [AlertNotice] {
        now += seconds
        let payload = JSONObject([("host", .string(host)), ("cpu_pct", .number(pct)), ("load", .number(1)), ("cores", .number(4)), ("ts", .number(Double(now)))])
        let out = engine.observe(topic: try! Topic("metrics/cpu/\(host)"), payload: payload, now: now) + engine.tick(now: now)
        notices += out
        return out
    }

    mutating func wait(_ seconds: Int64) -> [AlertNotice] {
        now += seconds
        let out = engine.tick(now: now)
        notices += out
        return out
    }
}

@Suite struct AlertRuleTests {
    @Test func theIssuesExampleReads() throws {
        let rule = try AlertRule.parse("disk_pct > 90 for 2m critical > 95")
        #expect(rule == AlertRule(metric: "disk_pct", comparison: .above, warning: 90, critical: 95, forSeconds: 120))
        #expect(rule.description == "disk_pct > 90 for 120s critical > 95")
        let below = try AlertRule.parse("mem_available_kb < 100000 clear 150000")
        #expect(below.recovered(150_001, from: 100_000) && !below.recovered(149_000, from: 100_000))
    }

    @Test(arguments: [
        ("", "the metric is missing"), ("disk_pct", "the comparison is missing"), ("disk_pct >= 90", "the comparison must be > or <"),
        ("disk_pct > ninety", "the threshold 'ninety' is not a number"), ("disk_pct > 90 for ever", "invalid duration"),
        ("disk_pct > 90 critical < 95", "the critical comparison must be > too"), ("disk_pct > 90 critical > 80", "past the warning one"),
        ("disk_pct > 90 clear 95", "safe side"), ("Disk-Pct > 1", "must be a field name"), ("disk_pct > 90 sometimes", "unexpected 'sometimes'"),
    ])
    func badRulesSayWhatIsWrong(text: String, reason: String) {
        #expect { try AlertRule.parse(text) } throws: { "\($0)".hasPrefix("invalid rule") && "\($0)".contains(reason) }
    }
}

@Suite struct AlertEngineTests {
    @Test func aForDurationWaitsForTheBreachToLast() throws {
        var options = AlertEngine.Options()
        options.rules = [try AlertRule.parse("disk_pct > 90 for 2m critical > 95")]
        var t = Timeline(options)
        #expect(t.disk("db-01", 97).isEmpty)           // breach starts
        #expect(t.disk("db-01", 97, after: 60).isEmpty) // 60 s: not yet
        #expect(t.disk("db-01", 50, after: 30).isEmpty) // back to normal: the clock restarts
        #expect(t.disk("db-01", 97, after: 30).isEmpty)
        #expect(t.disk("db-01", 97, after: 90).isEmpty)
        let fired = t.disk("db-01", 97, after: 30)      // 120 s of breach
        #expect(fired.count == 1)
        #expect(fired[0].topic == "alerts/disk_pct/db-01" && fired[0].status == "firing" && fired[0].severity == "critical")
        #expect(fired[0].payload["threshold"] == .number(95) && fired[0].payload["value"] == .number(97))
        #expect(fired[0].payload["labels"] == .object(JSONObject([("mount", .string("/"))])))
        #expect(fired[0].payload.keys.prefix(6) == ["host", "metric", "value", "threshold", "severity", "ts"]) // the seed's fields first
    }

    @Test func hysteresisKeepsAHoveringValueFromFlapping() {
        var t = Timeline()
        #expect(t.cpu("web-01", 91).first?.status == "firing")
        for value in [89.0, 90.5, 88.0, 91.0, 86.0] { #expect(t.cpu("web-01", value).isEmpty, "\(value) is within the hysteresis") }
        let resolved = t.cpu("web-01", 85.4) // below 90 - 5 % of 90
        #expect(resolved.first?.status == "resolved" && resolved.first?.payload["ends_at"] == .number(Double(t.now)))
        #expect(t.notices.count == 2)
    }

    @Test func severityChangesKeepTheFingerprint() {
        var t = Timeline()
        let warning = t.disk("db-01", 92)
        let critical = t.disk("db-01", 96)
        #expect(warning.first?.severity == "warning" && critical.first?.severity == "critical")
        #expect(warning.first?.payload["fingerprint"] == critical.first?.payload["fingerprint"])
        #expect(warning.first?.payload["starts_at"] == critical.first?.payload["starts_at"])
        #expect(t.disk("db-01", 94).isEmpty) // hysteresis on the critical threshold too
        #expect(t.disk("db-01", 90).first?.severity == "warning")
        #expect(t.disk("db-01", 80).first?.status == "resolved")
        // Another mount of the same host is another alert.
        let other = t.disk("db-01", 99, mount: "/var")
        #expect(other.first?.payload["fingerprint"] != critical.first?.payload["fingerprint"])
    }

    @Test func anAlertOnAListEntryIsLabelledByTheEntryNotTheHost() {
        var t = Timeline()
        let fired = t.disk("db-01", 99, mount: "/var")
        #expect(fired.count == 1)
        #expect(fired.first?.payload["labels"] == .object(JSONObject([("mount", .string("/var"))])))
        #expect(fired.first?.payload["fingerprint"] == .string("7ca1d6c926817994")) // as fingerprintsAreStableValues
    }

    @Test func fingerprintsAreStableValues() {
        // FNV-1a 64 of "disk_pct␟db-01␟mount=/var": the same in every version and process.
        #expect(Alert.fingerprint(metric: "disk_pct", host: "db-01", labels: [("mount", "/var")]) == "7ca1d6c926817994")
        #expect(Alert.fingerprint(metric: "a", host: "h", labels: [("x", "1"), ("y", "2")]) == Alert.fingerprint(metric: "a", host: "h", labels: [("y", "2"), ("x", "1")]))
        #expect(Alert.fingerprint(metric: "a", host: "h", labels: []) != Alert.fingerprint(metric: "a", host: "h2", labels: []))
    }

    @Test func aSilentHostGoesDownAndComesBackWhileItsOtherAlertsStay() {
        var t = Timeline()
        _ = t.disk("db-01", 97)
        _ = t.cpu("web-01", 10)   // 30 s later
        #expect(t.wait(59).isEmpty) // db-01 silent for 89 s
        let down = t.wait(1)      // 90 s
        #expect(down.map(\.topic) == ["alerts/host_down/db-01"])
        #expect(down.allSatisfy { $0.severity == "critical" && $0.status == "firing" && $0.payload["threshold"] == .number(90) })
        #expect(t.wait(30).map(\.topic) == ["alerts/host_down/web-01"])
        #expect(t.wait(600).isEmpty) // no repeat before the repeat interval, no second firing
        let back = t.disk("db-01", 97, after: 1)
        #expect(back.map(\.topic) == ["alerts/host_down/db-01"] && back.first?.status == "resolved")
        #expect(t.engine.firing.values.contains { $0.metric == "disk_pct" && $0.host == "db-01" }) // the disk alert still fires
    }

    @Test func theRegistrySayingOfflineTakesAHostDownAtOnce() {
        var t = Timeline()
        _ = t.cpu("web-01", 10)
        #expect(t.engine.registryReports(host: "web-01", online: true, now: t.now + 5).isEmpty)
        let down = t.engine.registryReports(host: "web-01", online: false, now: t.now + 5)
        #expect(down.map(\.topic) == ["alerts/host_down/web-01"] && down.first?.status == "firing")
        #expect(t.engine.registryReports(host: "web-01", online: false, now: t.now + 10).isEmpty) // once
        #expect(t.wait(120).isEmpty) // the silence finds it already down
        #expect(t.cpu("web-01", 10, after: 1).first?.status == "resolved")
        #expect(t.engine.registryReports(host: "never-published", online: false, now: t.now).isEmpty)
    }

    @Test func firingAlertsRepeatAtTheRepeatIntervalNeverOnEverySample() {
        var options = AlertEngine.Options()
        options.repeatInterval = 3600
        options.hostDownAfter = 1_000_000
        var t = Timeline(options)
        #expect(t.disk("db-01", 97).count == 1)
        var repeats = 0
        for _ in 0..<240 { repeats += t.disk("db-01", 97).count } // two hours of samples every 30 s
        #expect(repeats == 2)
        #expect(t.notices.allSatisfy { $0.status == "firing" && $0.payload["starts_at"] == t.notices[0].payload["starts_at"] })
    }

    @Test func aSeriesThatStopsWhileItsHostReportsResolvesAsStale() throws {
        var options = AlertEngine.Options()
        options.staleAfter = 300
        var t = Timeline(options)
        // The guide's shell agent: disk_pct with no mounts, one series per host.
        func scriptDisk(_ pct: Double) -> [AlertNotice] {
            t.now += 30
            let payload = JSONObject([("host", .string("web-01")), ("disk_pct", .number(pct)), ("ts", .number(Double(t.now)))])
            let out = t.engine.observe(topic: try! Topic("metrics/disk/web-01"), payload: payload, now: t.now) + t.engine.tick(now: t.now)
            t.notices += out
            return out
        }
        let fired = scriptDisk(97)
        #expect(fired.count == 1 && fired.first?.status == "firing" && fired.first?.payload["labels"] == nil)
        // The host moves to pilot agent: per-mount disk_pct, below the threshold.
        var resolved: [AlertNotice] = []
        for _ in 0..<9 { resolved += t.disk("web-01", 40) } // 270 s: not stale yet
        #expect(resolved.isEmpty)
        resolved += t.disk("web-01", 40) + t.disk("web-01", 40) // past 300 s
        #expect(resolved.count == 1)
        #expect(resolved.first?.status == "resolved" && resolved.first?.payload["labels"] == nil)
        #expect(resolved.first?.payload["reason"]?.stringValue?.hasPrefix("stale: no sample of this series for 3") == true)
        #expect(t.engine.firing.isEmpty)
        // A host that falls silent keeps its alerts (host_down says why), stale or not.
        _ = t.disk("db-01", 97)
        let silent = t.wait(1000)
        #expect(silent.map(\.topic).contains("alerts/host_down/db-01"))
        #expect(!silent.contains { $0.topic == "alerts/disk_pct/db-01" })
        #expect(t.engine.firing.values.contains { $0.metric == "disk_pct" && $0.host == "db-01" })
        // A check that is no longer run resolves the same way.
        var engine = AlertEngine(options: options)
        _ = engine.observe(topic: try Topic("health/old-check/web-02"), payload: JSONObject([("status", .string("critical"))]), now: 0)
        var gone: [AlertNotice] = []
        for now in stride(from: Int64(30), through: 330, by: 30) {
            gone += engine.observe(topic: try Topic("metrics/cpu/web-02"), payload: JSONObject([("cpu_pct", .number(1))]), now: now) + engine.tick(now: now)
        }
        #expect(gone.map(\.topic) == ["alerts/health/web-02"] && gone.first?.status == "resolved")
    }

    @Test func healthChecksFireAndResolve() throws {
        var engine = AlertEngine()
        let topic = try Topic("health/webapp/web-01")
        let failing = engine.observe(topic: topic, payload: JSONObject([("status", .string("critical")), ("status_code", .number(503))]), now: 10)
        #expect(failing.first?.topic == "alerts/health/web-01" && failing.first?.severity == "critical")
        #expect(failing.first?.payload["labels"] == .object(JSONObject([("check", .string("webapp"))])))
        #expect(engine.observe(topic: topic, payload: JSONObject([("status", .string("critical"))]), now: 20).isEmpty)
        #expect(engine.observe(topic: topic, payload: JSONObject([("status", .string("warning"))]), now: 30).first?.severity == "warning")
        #expect(engine.observe(topic: topic, payload: JSONObject([("status", .string("ok"))]), now: 40).first?.status == "resolved")
    }

    @Test func aRestartNeitherReFiresNorLosesAResolve() throws {
        var t = Timeline()
        _ = t.disk("db-01", 97)
        _ = t.cpu("web-01", 99)
        let saved = t.engine.state
        // A new process restores the state from its file.
        let restored = try AlertEngine(options: .init(), restoring: JSONValue.parse(saved.description))
        t.engine = restored
        #expect(t.engine.firing.count == 2)
        #expect(t.disk("db-01", 97).isEmpty)    // still firing: nothing new
        #expect(t.cpu("web-01", 99).isEmpty)
        #expect(t.cpu("web-01", 20).first?.status == "resolved") // recovered: the resolve is not lost
        #expect(throws: ParseError.self) { try AlertEngine(options: .init(), restoring: .object(JSONObject([("version", .number(9))]))) }
        // Restarted ten minutes later: nobody was listening, so nobody is down yet.
        t.now += 600
        t.engine.started(at: t.now)
        #expect(t.wait(89).isEmpty)
        #expect(t.wait(1).count == 2) // db-01 and web-01, a full silence after the restart
    }
}

/// `/metrics` is what Prometheus scrapes and dashboards query: its names
/// and labels are spelled out here, so a change to the extraction shows.
@Suite struct FleetStatePrometheusTests {
    @Test func everyNumericFieldIsAGaugeLabelledByHostThenEntry() throws {
        var fleet = FleetState()
        func observe(_ topic: String, _ json: String) throws {
            guard case .object(let payload) = try JSONValue.parse(json) else { return }
            fleet.observe(topic: try Topic(topic), payload: payload, now: 1_764_100_000)
        }
        try observe("metrics/cpu/web-01", #"{"host":"web-01","cpu_pct":42.1,"cores":4,"ts":1764100000}"#)
        try observe("metrics/disk/db-01", #"{"host":"db-01","disk_pct":50,"mounts":[{"mount":"/","device":"/dev/vda1","disk_pct":50},{"mount":"/var","device":"/dev/vdb1","disk_pct":97}],"ts":1764100000}"#)
        try observe("metrics/net/db-01", #"{"host":"db-01","interfaces":[{"iface":"eth0","rx_bytes_ps":1200.5}],"ts":1764100000}"#)
        try observe("health/webapp/web-01", #"{"host":"web-01","check":"webapp","status":"ok","latency_ms":12.5,"ts":1764100000}"#)
        let text = fleet.prometheus(now: 1_764_100_010, downAfter: 90, firing: [])
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines == [
            #"pilot_check_latency_ms{host="web-01",check="webapp"} 12.5"#,
            #"pilot_check_ok{host="web-01",check="webapp"} 1"#,
            #"pilot_cores{host="web-01"} 4"#,
            #"pilot_cpu_pct{host="web-01"} 42.1"#,
            #"pilot_disk_pct{host="db-01",mount="/"} 50"#,
            #"pilot_disk_pct{host="db-01",mount="/var"} 97"#,
            #"pilot_host_up{host="db-01"} 1"#,
            #"pilot_host_up{host="web-01"} 1"#,
            #"pilot_last_seen_seconds{host="db-01"} 1764100000"#,
            #"pilot_last_seen_seconds{host="web-01"} 1764100000"#,
            #"pilot_rx_bytes_ps{host="db-01",iface="eth0"} 1200.5"#,
        ])
    }
}

@Suite struct NoticeEnrichmentTests {
    @Test func noticesCarryTheRulesDirectionAndDurationAndHostDownItsLastAddress() throws {
        var fleet = FleetState()
        fleet.observe(topic: try Topic("metrics/disk/db-01"), payload: JSONObject([("host", .string("db-01"))]), now: 1_000)
        fleet.directory(host: "db-01", tags: ["db"], online: false, address: "10.0.0.5:4000")
        let rules = [try AlertRule.parse("disk_pct > 90 for 2m critical > 95")]
        let disk = Alert(fingerprint: "f", metric: "disk_pct", host: "db-01", labels: [], severity: .critical, value: 97, threshold: 95,
                         startsAt: 1_000, lastSentAt: 1_000).notice(status: "firing", at: 1_000)
        let enriched = fleet.enriched(disk, rules: rules)
        #expect(enriched.payload["comparison"] == .string("above"))
        #expect(enriched.payload["for_s"] == .number(120))
        let down = Alert(fingerprint: "d", metric: "host_down", host: "db-01", labels: [], severity: .critical, value: 90, threshold: 90,
                         startsAt: 1_090, lastSentAt: 1_090).notice(status: "firing", at: 1_090)
        let downEnriched = fleet.enriched(down, rules: rules)
        #expect(downEnriched.payload["last_seen"] == .number(1_000))
        #expect(downEnriched.payload["last_address"] == .string("10.0.0.5:4000"))
        #expect(downEnriched.payload["comparison"] == nil)
    }
}
