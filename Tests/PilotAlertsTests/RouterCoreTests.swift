import PilotCore
import Testing
@testable import PilotAlerts

/// Alerts as the aggregator would publish them.
func alert(_ name: String, _ host: String, _ status: AlertEvent.Status = .firing, severity: String = "critical", at: Int64 = 0,
           labels: [Label] = []) -> AlertEvent {
    let labelPairs = labels.map { ($0.name, $0.value) }
    return AlertEvent(fingerprint: "\(name)/\(host)" + labelPairs.map { "/\($0.0)=\($0.1)" }.joined(), status: status, name: name, host: host,
                      severity: severity, labels: labels, value: 97, threshold: 95, startsAt: at, endsAt: status == .resolved ? at : nil, at: at)
}

func core(routes: [String] = [], receivers: [RouterCore.Receiver] = [.init(name: "hook")], groupBy: [String] = ["alertname"],
          wait: Int64 = 30, interval: Int64 = 300, repeatAfter: Int64 = 14_400) throws -> RouterCore {
    let table = try RoutingTable(routes: routes.map { try Route(parsing: $0) }, receivers: receivers.map(\.name))
    var config = RouterCore.Config(table: table, receivers: receivers)
    config.groupBy = groupBy
    config.timing.groupWait = wait
    config.timing.groupInterval = interval
    config.timing.repeatInterval = repeatAfter
    return RouterCore(config: config, idPrefix: "r")
}

@Suite struct RouterCoreTests {
    @Test func aNewGroupWaitsForCompanyThenTravelsTogether() throws {
        var router = try core()
        #expect(router.receive(alert("disk_pct", "db-01"), tags: [], now: 100).isEmpty)
        #expect(router.receive(alert("disk_pct", "db-02", at: 110), tags: [], now: 110).isEmpty)
        #expect(router.receive(alert("cpu_pct", "web-01", at: 120), tags: [], now: 120).isEmpty)
        #expect(router.tick(now: 129).isEmpty) // group_wait (30 s) not over for anyone
        let first = router.tick(now: 130)
        #expect(first.count == 1)
        #expect(first[0].groupLabels == [Label("alertname", "disk_pct")])
        #expect(first[0].alerts.map(\.host) == ["db-01", "db-02"])
        #expect(first[0].groupKey == "{}:{alertname=\"disk_pct\"}")
        let second = router.tick(now: 150)
        #expect(second.map(\.groupKey) == ["{}:{alertname=\"cpu_pct\"}"])
        #expect(first[0].id != second[0].id)
    }

    @Test func changesWaitForTheGroupIntervalAndNothingNewSendsNothing() throws {
        var router = try core()
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        #expect(router.tick(now: 30).count == 1)
        _ = router.receive(alert("disk_pct", "db-02", at: 40), tags: [], now: 40)
        #expect(router.tick(now: 100).isEmpty)
        let next = router.tick(now: 330) // 30 + group_interval
        #expect(next.count == 1)
        #expect(next.first?.firing.map(\.host) == ["db-01", "db-02"])
        #expect(router.tick(now: 630).isEmpty) // the same firing set: no news, no repeat yet
    }

    @Test func firingAlertsRepeatAfterTheRepeatInterval() throws {
        var router = try core(interval: 300, repeatAfter: 3_600)
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        #expect(router.tick(now: 30).count == 1)
        var sent: [Int64] = []
        var now: Int64 = 31
        while now <= 7_300 {
            if !router.tick(now: now).isEmpty { sent.append(now) }
            now += 1
        }
        #expect(sent == [3_630, 7_230]) // flushes every 300 s, repeats once 3600 s passed
    }

    @Test func aResolveIsSentOnceOnlyForWhatWasNotifiedFiring() throws {
        var router = try core()
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        _ = router.receive(alert("disk_pct", "db-02"), tags: [], now: 0)
        #expect(router.tick(now: 30).count == 1)
        _ = router.receive(alert("disk_pct", "db-01", .resolved, at: 100), tags: [], now: 100)
        let next = router.tick(now: 330)
        #expect(next.count == 1)
        #expect(next.first?.firing.map(\.host) == ["db-02"])
        #expect(next.first?.resolved.map(\.host) == ["db-01"])
        #expect(next.first?.status == .firing)
        _ = router.receive(alert("disk_pct", "db-02", .resolved, at: 400), tags: [], now: 400)
        let last = router.tick(now: 630)
        #expect(last.count == 1 && last.first?.status == .resolved)
        #expect(router.groupCount == 0) // empty groups go
        // Fired and resolved before the group's first flush: nobody hears of it.
        _ = router.receive(alert("mem_pct", "web-01"), tags: [], now: 1_000)
        _ = router.receive(alert("mem_pct", "web-01", .resolved, at: 1_010), tags: [], now: 1_010)
        #expect(router.tick(now: 1_030).isEmpty)
    }

    @Test func aSeverityChangeIsNews() throws {
        var router = try core()
        _ = router.receive(alert("disk_pct", "db-01", severity: "warning"), tags: [], now: 0)
        #expect(router.tick(now: 30).count == 1)
        _ = router.receive(alert("disk_pct", "db-01", severity: "critical", at: 50), tags: [], now: 50)
        let next = router.tick(now: 330)
        #expect(next.first?.firing.first?.severity == "critical")
    }

    @Test func hostDownInhibitsTheHostsOtherAlertsUntilItResolves() throws {
        var router = try core(groupBy: ["alertname"])
        _ = router.receive(alert("host_down", "db-01"), tags: [], now: 0)
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        _ = router.receive(alert("disk_pct", "db-02"), tags: [], now: 0)
        let first = router.tick(now: 30)
        #expect(first.map { $0.alerts.map(\.host) } == [["db-02"], ["db-01"]]) // disk_pct without db-01; host_down
        #expect(first.map(\.groupLabels).last == [Label("alertname", "host_down")])
        _ = router.receive(alert("host_down", "db-01", .resolved, at: 100), tags: [], now: 100)
        let next = router.tick(now: 330)
        let disk = try #require(next.first { $0.groupLabels == [Label("alertname", "disk_pct")] })
        #expect(disk.firing.map(\.host) == ["db-01", "db-02"]) // still firing: notified now
        let down = try #require(next.first { $0.groupLabels == [Label("alertname", "host_down")] })
        #expect(down.resolved.map(\.host) == ["db-01"])
    }

    @Test func aSilenceHoldsBackMatchingAlertsAndItsEndNotifiesAtOnce() throws {
        var router = try core()
        router.addSilence(Silence(id: "s1", matchers: try Silence.matchers(["host=db-01", "metric=disk_pct"]), startsAt: 0, endsAt: 1_000,
                                  comment: "disk swap", createdBy: "ops"))
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 10)
        #expect(router.tick(now: 40).isEmpty)
        _ = router.receive(alert("disk_pct", "db-02", at: 50), tags: [], now: 50)
        #expect(router.tick(now: 340).map { $0.alerts.map(\.host) } == [["db-02"]])
        #expect(router.tick(now: 999).isEmpty)
        let after = router.tick(now: 1_000) // the silence ends; db-01 still fires
        #expect(after.map { $0.firing.map(\.host) } == [["db-01", "db-02"]])
        // Expiring one early works the same way.
        router.addSilence(Silence(id: "s2", matchers: try Silence.matchers(["host=db-03"]), startsAt: 1_000, endsAt: 9_000, comment: "", createdBy: ""))
        _ = router.receive(alert("disk_pct", "db-03", at: 1_001), tags: [], now: 1_001)
        #expect(router.tick(now: 1_300).isEmpty)
        let expired = router.expireSilence("s2", now: 1_310)
        let unknown = router.expireSilence("nope", now: 1_310)
        #expect(expired && !unknown)
        #expect(router.tick(now: 1_311).first?.firing.map(\.host) == ["db-01", "db-02", "db-03"])
    }

    @Test func routesPickReceiversFirstMatchOrContinueAndTagsCount() throws {
        let receivers: [RouterCore.Receiver] = [.init(name: "oncall"), .init(name: "dba"), .init(name: "slack")]
        var router = try core(routes: ["severity=critical -> oncall", "tag:db -> dba continue", "default -> slack"], receivers: receivers, wait: 0)
        _ = router.receive(alert("disk_pct", "db-01", severity: "critical"), tags: ["db"], now: 0)
        _ = router.receive(alert("disk_pct", "db-02", severity: "warning"), tags: ["db"], now: 0)
        _ = router.receive(alert("cpu_pct", "web-01", severity: "warning"), tags: [], now: 0)
        let sent = router.tick(now: 0)
        let byReceiver = Dictionary(grouping: sent, by: \.receiver).mapValues { $0.flatMap { $0.alerts.map(\.host) }.sorted() }
        #expect(byReceiver == ["oncall": ["db-01"], "dba": ["db-02"], "slack": ["db-02", "web-01"]])
    }

    @Test func passThroughReceiversGetEveryAlertAtOnceAndFiringOnesAgain() throws {
        var router = try core(receivers: [.init(name: "am", resend: 60)])
        let first = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        #expect(first.count == 1 && first.first?.alerts.map(\.host) == ["db-01"])
        _ = router.receive(alert("disk_pct", "db-02", at: 10), tags: [], now: 10)
        #expect(router.tick(now: 59).isEmpty)
        #expect(router.tick(now: 60).first?.alerts.map(\.host) == ["db-01", "db-02"])
        let resolve = router.receive(alert("disk_pct", "db-01", .resolved, at: 70), tags: [], now: 70)
        #expect(resolve.first?.alerts.first?.status == .resolved)
        #expect(router.tick(now: 120).first?.alerts.map(\.host) == ["db-02"])
        _ = router.receive(alert("disk_pct", "db-02", .resolved, at: 130), tags: [], now: 130)
        #expect(router.tick(now: 180).isEmpty)
    }

    @Test func aStormOfTwoThousandHostsIsOneNotification() throws {
        var router = try core(wait: 30)
        for index in 0..<2_000 { _ = router.receive(alert("host_down", "host-\(index)"), tags: [], now: Int64(index / 1_000)) }
        let sent = router.tick(now: 30)
        #expect(sent.count == 1)
        #expect(sent.first?.alerts.count == 2_000)
    }

    @Test func theStateRoundTripsThroughARestart() throws {
        var router = try core(receivers: [.init(name: "hook"), .init(name: "am", resend: 60)])
        _ = router.receive(alert("disk_pct", "db-01"), tags: [], now: 0)
        #expect(router.tick(now: 30).count == 1) // hook's group; am's re-post is due at 60
        _ = router.receive(alert("disk_pct", "db-02", at: 40), tags: [], now: 40)
        router.addSilence(Silence(id: "s1", matchers: [try AlertMatcher(parsing: "host=web-*")], startsAt: 0, endsAt: 5_000, comment: "c", createdBy: "u"))
        // The rows a commit writes, applied as the outbox would, restore the same state.
        var saved = RouterCore.Snapshot(meta: .null)
        func apply(_ changes: RouterCore.Changes) {
            saved.meta = changes.meta
            for row in changes.groups { saved.groups[row.key] = row.value }
            for row in changes.forwarded { saved.forwarded[row.key] = row.value }
        }
        apply(router.takeChanges())
        #expect(saved == router.snapshot)
        #expect(router.takeChanges().groups.isEmpty) // nothing changed since
        _ = router.receive(alert("disk_pct", "db-03", at: 45), tags: [], now: 45)
        let changes = router.takeChanges()
        #expect(changes.groups.count == 1 && changes.forwarded.count == 1) // one group's row, one pass-through row
        apply(changes)
        #expect(saved == router.snapshot)
        var restored = try RouterCore(config: router.config, idPrefix: "r", restoring: saved)
        #expect(restored.snapshot == router.snapshot)
        let next = restored.tick(now: 330)
        #expect(next.first { $0.receiver == "hook" }?.firing.map(\.host) == ["db-01", "db-02", "db-03"])
        #expect(next.count == 2 && next.allSatisfy { $0.id.hasPrefix("r-") && (Int($0.id.dropFirst(2)) ?? 0) >= 3 }) // ids continue, never reused
        #expect(restored.silences["s1"]?.comment == "c")
        #expect(throws: ParseError.self) { try RouterCore(config: router.config, idPrefix: "r", restoring: RouterCore.Snapshot(meta: .object(JSONObject()))) }
    }
}

@Suite struct RouteTests {
    @Test func matchersAndGlobs() throws {
        let db = alert("disk_pct", "db-01", labels: [Label("mount", "/var")])
        #expect(try AlertMatcher(parsing: "host=db-*").matches(db, tags: []))
        #expect(try !AlertMatcher(parsing: "host=web-*").matches(db, tags: []))
        #expect(try AlertMatcher(parsing: "host!=web-01").matches(db, tags: []))
        #expect(try AlertMatcher(parsing: "mount=/var").matches(db, tags: []))
        #expect(try AlertMatcher(parsing: "metric=disk_*").matches(db, tags: []))
        #expect(try AlertMatcher(parsing: "status=firing").matches(db, tags: []))
        #expect(try AlertMatcher(parsing: "tag:db").matches(db, tags: ["db", "prod"]))
        #expect(try !AlertMatcher(parsing: "tag:db").matches(db, tags: []))
        #expect(AlertMatcher.glob("*-01", "db-01") && AlertMatcher.glob("d*0*1", "db-01") && !AlertMatcher.glob("d*x", "db-01"))
    }

    @Test func badRoutesAndMatchersSayWhatIsWrong() throws {
        #expect(throws: ParseError("route", "severity=critical oncall", "use 'MATCHERS -> RECEIVER', e.g. 'severity=critical -> oncall'")) {
            try Route(parsing: "severity=critical oncall")
        }
        #expect(throws: ParseError.self) { try Route(parsing: "severity=urgent -> oncall") }
        #expect(throws: ParseError.self) { try Route(parsing: "host -> oncall") }
        #expect(throws: ParseError.self) { try Route(parsing: "severity=critical ->") }
        let route = try Route(parsing: "severity=critical tag:db -> oncall,dba continue")
        #expect(route.receivers == ["oncall", "dba"] && route.continues && route.matchers.count == 2)
        #expect(route.description == "severity=critical tag:db -> oncall,dba continue")
        #expect(throws: ParseError("route", "severity=critical -> pager", "no receiver is named 'pager' (receivers: oncall, slack)")) {
            try RoutingTable(routes: [try Route(parsing: "severity=critical -> pager")], receivers: ["oncall", "slack"])
        }
    }

    @Test func unroutedAlertsGoToTheReceiversNoRouteNames() throws {
        let table = try RoutingTable(routes: [try Route(parsing: "severity=critical -> oncall")], receivers: ["oncall", "slack"])
        #expect(table.destinations(alert("cpu_pct", "web-01", severity: "warning"), tags: []).map(\.receiver) == ["slack"])
        #expect(table.destinations(alert("cpu_pct", "web-01"), tags: []).map(\.receiver) == ["oncall"])
        let all = try RoutingTable(routes: [try Route(parsing: "severity=critical -> oncall"), try Route(parsing: "tag:x -> slack")], receivers: ["oncall", "slack"])
        #expect(all.destinations(alert("cpu_pct", "web-01", severity: "warning"), tags: []).map(\.receiver) == ["oncall", "slack"])
        let none = try RoutingTable(routes: [], receivers: ["a", "b"])
        #expect(none.destinations(alert("cpu_pct", "web-01"), tags: []).map(\.receiver) == ["a", "b"])
    }

    @Test func silencesNeedAMatcherAndNeverMatchEverything() throws {
        #expect(throws: ParseError.self) { try Silence.matchers([]) }
        #expect(throws: ParseError.self) { try Silence.matchers(["host=*"]) }
        #expect(throws: ParseError.self) { try Silence.matchers(["db-01"]) }
        let silence = Silence(id: "a", matchers: try Silence.matchers(["host=db-01"]), startsAt: 10, endsAt: 20, comment: "", createdBy: "")
        #expect(!silence.isActive(at: 9) && silence.isActive(at: 10) && !silence.isActive(at: 20))
    }
}
