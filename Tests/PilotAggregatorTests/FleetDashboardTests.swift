@testable import PilotAggregator
import PilotCore
import Testing

/// The fleet as the dashboard reads it: states and since when, change
/// numbers for "what changed since", the hour of sparkline, summaries.
@Suite struct FleetDashboardTests {
    let t0: Int64 = 1_764_100_020 // a minute's start

    func message(_ kind: String, _ fields: [(String, JSONValue)], at now: Int64) -> (Topic, JSONObject) {
        (try! Topic("metrics/\(kind)/web-01"), JSONObject([("host", .string("web-01"))] + fields + [("ts", .number(Double(now)))]))
    }

    func observe(_ fleet: inout FleetState, _ kind: String, _ fields: [(String, JSONValue)], at now: Int64, host: String = "web-01") {
        let payload = JSONObject([("host", .string(host))] + fields + [("ts", .number(Double(now)))])
        fleet.observe(topic: try! Topic("metrics/\(kind)/\(host)"), payload: payload, now: now)
    }

    @Test func statesFollowSilenceAndTheRegistryAndSaySinceWhen() {
        var fleet = FleetState()
        observe(&fleet, "cpu", [("cpu_pct", .number(12))], at: t0)
        #expect(fleet.hosts["web-01"]?.state == .online)
        #expect(fleet.hosts["web-01"]?.stateSince == t0)
        fleet.refresh(now: t0 + 89, downAfter: 90)
        #expect(fleet.hosts["web-01"]?.state == .online)
        // Quiet past the limit, registry still sees it: silent since it was last heard.
        fleet.directory(host: "web-01", tags: ["web"], online: true)
        fleet.refresh(now: t0 + 90, downAfter: 90)
        #expect(fleet.hosts["web-01"]?.state == .silent)
        #expect(fleet.hosts["web-01"]?.stateSince == t0)
        // The registry loses it: offline, still since it went quiet.
        fleet.directory(host: "web-01", tags: ["web"], online: false)
        fleet.refresh(now: t0 + 100, downAfter: 90)
        #expect(fleet.hosts["web-01"]?.state == .offline)
        #expect(fleet.hosts["web-01"]?.stateSince == t0)
        // Back (the registry sees it again and it publishes): online from now.
        fleet.directory(host: "web-01", tags: ["web"], online: true)
        observe(&fleet, "cpu", [("cpu_pct", .number(14))], at: t0 + 200)
        fleet.refresh(now: t0 + 200, downAfter: 90)
        #expect(fleet.hosts["web-01"]?.state == .online)
        #expect(fleet.hosts["web-01"]?.stateSince == t0 + 200)
        // Reported gone by the registry while still heard: offline at once.
        fleet.directory(host: "web-01", tags: ["web"], online: false)
        fleet.refresh(now: t0 + 201, downAfter: 90)
        #expect(fleet.hosts["web-01"]?.state == .offline)
    }

    @Test func changesAfterANumberAreTheHostsThatChangedAndNothingElse() {
        var fleet = FleetState()
        observe(&fleet, "cpu", [("cpu_pct", .number(1))], at: t0, host: "a")
        observe(&fleet, "cpu", [("cpu_pct", .number(1))], at: t0, host: "b")
        let seen = fleet.seq
        #expect(fleet.changed(after: seen).isEmpty)
        #expect(fleet.changed(after: nil).map(\.name) == ["a", "b"])
        observe(&fleet, "memory", [("mem_pct", .number(5))], at: t0 + 10, host: "b")
        #expect(fleet.changed(after: seen).map(\.name) == ["b"])
        // A state change by time alone is a change too.
        let before = fleet.seq
        fleet.refresh(now: t0 + 95, downAfter: 90) // a is quiet since t0, b since t0 + 10
        #expect(fleet.changed(after: before).map(\.name) == ["a"])
        // Unchanged directory facts are not a change; new tags are.
        fleet.directory(host: "a", tags: ["x"], online: false)
        let tagged = fleet.seq
        fleet.directory(host: "a", tags: ["x"], online: false)
        #expect(fleet.changed(after: tagged).isEmpty)
        // A notice for a host is a change of its alerts, and a resolve is kept for the alerts page.
        let notice = AlertNotice(topic: "alerts/cpu_pct/b", payload: JSONObject([("host", .string("b")), ("status", .string("resolved"))]))
        fleet.noted(notice)
        #expect(fleet.changed(after: tagged).map(\.name) == ["b"])
        #expect(fleet.resolved.count == 1)
        #expect(fleet.hosts["b"]?.notices.count == 1)
    }

    @Test func theSparklineKeepsAnHourPerMinuteAndTheFullestDisk() {
        var fleet = FleetState()
        for minute in 0..<70 {
            let now = t0 + Int64(minute) * 60
            observe(&fleet, "cpu", [("cpu_pct", .number(Double(minute)))], at: now)
            if minute % 2 == 0 {
                let mounts: JSONValue = .array([
                    .object(JSONObject([("mount", .string("/")), ("disk_pct", .number(10))])),
                    .object(JSONObject([("mount", .string("/var")), ("disk_pct", .number(Double(50 + minute % 7)))])),
                ])
                observe(&fleet, "disk", [("disk_pct", .number(10)), ("mounts", mounts)], at: now)
            }
        }
        let now = t0 + 69 * 60
        let spark = fleet.hosts["web-01"]!.spark.json(now: now, newestOnly: false)
        guard case .array(let cpu)? = spark["cpu"], case .array(let disk)? = spark["disk"], case .array(let mem)? = spark["mem"] else {
            Issue.record("no arrays in \(spark)")
            return
        }
        #expect(cpu.count == 60 && disk.count == 60 && mem.count == 60)
        #expect(spark["start"]?.int64Value == t0 + 10 * 60) // the last 60 minutes: 10...69
        #expect(cpu.first == .number(10) && cpu.last == .number(69))
        #expect(disk[0] == .number(53)) // minute 10: /var is fullest at 50 + 10 % 7
        #expect(disk[1] == .null) // odd minutes sent no disk
        #expect(mem.allSatisfy { $0 == .null })
        // The newest minutes only, for changes.
        let newest = fleet.hosts["web-01"]!.spark.json(now: now, newestOnly: true)
        #expect(newest["cpu"] == .array([65, 66, 67, 68, 69].map { .number($0) }) && newest["start"]?.int64Value == now - 4 * 60)
        // A late value from before the window changes nothing.
        var late = fleet.hosts["web-01"]!.spark
        late.record(.cpu, 99, at: t0)
        #expect(late.json(now: now, newestOnly: false)["cpu"] == spark["cpu"])
        #expect(FleetState.fullestDisk(JSONObject([("disk_pct", .number(42))]))?.pct == 42) // the guide's shell agent: no mounts
        // A new host's hour starts at its first value, not with 59 empty minutes.
        var fresh = Sparkline()
        fresh.record(.mem, 20, at: now - 60)
        #expect(fresh.json(now: now, newestOnly: false)["mem"] == .array([.number(20), .null]))
    }

    @Test func aSummaryCarriesFiguresChecksAndAlerts() {
        var fleet = FleetState()
        observe(&fleet, "cpu", [("cpu_pct", .number(12.5)), ("load", .number(0.5))], at: t0)
        observe(&fleet, "memory", [("mem_pct", .number(40))], at: t0)
        observe(&fleet, "uptime", [("uptime_sec", .number(3600))], at: t0)
        fleet.observe(topic: try! Topic("health/nginx/web-01"), payload: JSONObject([
            ("status", .string("critical")), ("latency_ms", .number(3.5)), ("message", .string("connection refused")),
        ]), now: t0)
        fleet.directory(host: "web-01", tags: ["production"], online: true, address: "203.0.113.7:4000", overlay: "1:0001.0000.0005")
        let alert = Alert(fingerprint: "f1", metric: "cpu_pct", host: "web-01", labels: [], severity: .critical, value: 97.04, threshold: 95,
                          startsAt: t0 - 60, lastSentAt: t0)
        let summary = fleet.summary("web-01", fleet.hosts["web-01"]!, now: t0, firing: [alert], rules: AlertRule.defaults, fullSpark: true)
        #expect(summary["state"] == .string("online") && summary["cpu"] == .number(12.5) && summary["mem"] == .number(40))
        #expect(summary["disk"] == .null && summary["load1"] == .number(0.5) && summary["uptime_s"] == .number(3600))
        #expect(summary["address"] == .string("1:0001.0000.0005") && summary["endpoint"] == .string("203.0.113.7:4000"))
        #expect(summary["tags"] == .array([.string("production")]))
        #expect(summary["checks"] == .array([.object(JSONObject([
            ("name", .string("nginx")), ("status", .string("critical")), ("latency_ms", .number(3.5)), ("message", .string("connection refused")),
        ]))]))
        guard case .array(let alerts)? = summary["alerts"], let first = alerts.first else {
            Issue.record("no alerts in \(summary)")
            return
        }
        #expect(first["value"] == .number(97) && first["comparison"] == .string("above") && first["since"]?.int64Value == t0 - 60)
        #expect(fleet.counts(alerting: ["web-01"]) == .object(JSONObject([
            ("hosts", .number(1)), ("up", .number(1)), ("down", .number(0)), ("alerting", .number(1)),
        ])))
    }
}
