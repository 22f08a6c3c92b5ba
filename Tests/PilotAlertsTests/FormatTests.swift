import Testing
@testable import PilotAlerts
import PilotCore

/// 2026-12-01T23:00:00Z, a Tuesday.
private let t0: Int64 = 1_796_166_000
private let context = FormatContext(externalURL: "http://hub:9190/", sender: "hub-01")
private let bare = FormatContext(sender: "hub-01")

private func disk(_ host: String = "db-01", status: AlertEvent.Status = .firing, value: Double = 97.14) -> AlertEvent {
    AlertEvent(fingerprint: "fp-disk-" + host, status: status, name: "disk_pct", host: host, severity: "critical",
               labels: [Label("mount", "/")], value: value, threshold: 95, forSeconds: 120, startsAt: t0,
               endsAt: status == .resolved ? t0 + 720 : nil, at: status == .resolved ? t0 + 720 : t0)
}
private let hostDown = AlertEvent(fingerprint: "fp-down", status: .firing, name: "host_down", host: "web-01", severity: "critical",
                                  value: 90, threshold: 90, startsAt: t0 + 155, at: t0 + 155, lastSeen: t0 + 65, lastAddress: "10.0.0.5:4000")
private let health = AlertEvent(fingerprint: "fp-health", status: .firing, name: "health", host: "web-01", severity: "warning",
                                labels: [Label("check", "nginx")], value: 1, threshold: 0, startsAt: t0, at: t0)

private func notification(_ alerts: [AlertEvent], isTest: Bool = false) -> Notification {
    Notification(id: "n-42", receiver: "ops", groupKey: "{}:{alertname=\"disk_pct\"}", groupLabels: [Label("alertname", "disk_pct")],
                 alerts: alerts, createdAt: t0 + 30, isTest: isTest)
}

/// The output as a receiver parses it: what we assert on is what they read.
private func parsed(_ value: JSONValue) throws -> JSONValue { try JSONValue.parse(value.description) }
private func keys(_ value: JSONValue?) -> [String] { if case .object(let object)? = value { object.keys } else { [] } }
private func items(_ value: JSONValue?) -> [JSONValue] { if case .array(let array)? = value { array } else { [] } }

@Suite struct TimeTextTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (-1, "1969-12-31T23:59:59Z"), (t0, "2026-12-01T23:00:00Z"),
        (1_709_210_096, "2024-02-29T12:34:56Z"), (1_709_251_200, "2024-03-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
        (946_684_799, "1999-12-31T23:59:59Z"), (946_684_800, "2000-01-01T00:00:00Z"), (4_107_542_400, "2100-03-01T00:00:00Z"),
        (-2_203_891_200, "1900-03-01T00:00:00Z"), (-62_135_596_800, "0001-01-01T00:00:00Z"), (-62_167_219_200, "0000-01-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
    ])
    func rfc3339(seconds: Int64, text: String) { #expect(TimeText.rfc3339(seconds) == text) }

    @Test func daysAndCivilDatesRoundTripAcrossCenturies() {
        var previous = TimeText.days(fromCivil: 1599, 12, 31)
        for year in Int64(1600)...2404 {
            for month in 1...12 {
                let length = [31, (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
                for day in 1...length {
                    let days = TimeText.days(fromCivil: year, month, day)
                    #expect(days == previous + 1)
                    previous = days
                    let back = TimeText.civil(fromDays: days)
                    if back != (year, month, day) { Issue.record("\(year)-\(month)-\(day) came back as \(back)"); return }
                }
            }
        }
    }

    @Test func clockDurationAndEmailDate() {
        #expect(TimeText.clock(t0 + 5) == "23:00:05 UTC")
        #expect(TimeText.clock(-1) == "23:59:59 UTC")
        #expect(TimeText.zeroTime == "0001-01-01T00:00:00Z")
        let durations: [(Int64, String)] = [(0, "0s"), (45, "45s"), (120, "2m"), (90, "1m30s"), (5_400, "1h30m"), (3_605, "1h"),
                                            (273_600, "3d4h"), (86_400, "1d"), (-5, "0s")]
        for (seconds, text) in durations { #expect(TimeText.duration(seconds) == text, "\(seconds)") }
        #expect(TimeText.rfc5322(t0) == "Tue, 01 Dec 2026 23:00:00 +0000")
        #expect(TimeText.rfc5322(1_709_210_096) == "Thu, 29 Feb 2024 12:34:56 +0000")
        #expect(TimeText.rfc5322(-1) == "Wed, 31 Dec 1969 23:59:59 +0000")
    }
}

@Suite struct SummaryTests {
    @Test func thresholdAlertsSayValueWhereAndRule() {
        #expect(Formats.summary(disk()) == "CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)")
        let net = AlertEvent(fingerprint: "f", status: .firing, name: "net_rx_mbps", host: "web-01", severity: "warning",
                             labels: [Label("iface", "eth0")], value: 0.45, threshold: 1.5, comparison: "below", forSeconds: 0, startsAt: t0, at: t0)
        #expect(Formats.summary(net) == "WARNING web-01 net_rx_mbps 0.5 on eth0 (below 1.5)")
        let load = AlertEvent(fingerprint: "f", status: .firing, name: "load1", host: "h", severity: "warning",
                              labels: [Label("device", "sda"), Label("zone", "b")], value: 12, startsAt: t0, at: t0)
        #expect(Formats.summary(load) == "WARNING h load1 12.0 on sda zone=b")
    }

    @Test func hostDownSaysSinceWhenAndFromWhere() {
        #expect(Formats.summary(hostDown) == "CRITICAL web-01 host_down: silent since 23:01:05 UTC (1m30s), last address 10.0.0.5:4000")
        var inferred = hostDown
        inferred.lastSeen = nil
        inferred.lastAddress = nil
        #expect(Formats.summary(inferred) == "CRITICAL web-01 host_down: silent since 23:01:05 UTC (1m30s)")
    }

    @Test func healthAndResolved() {
        #expect(Formats.summary(health) == "WARNING web-01 health check nginx failing")
        #expect(Formats.summary(disk(status: .resolved, value: 80.2)) == "RESOLVED db-01 disk_pct 80.2 % on / (resolved after 12m)")
        var back = health
        back.status = .resolved
        back.endsAt = t0 + 45
        #expect(Formats.summary(back) == "RESOLVED web-01 health check nginx (resolved after 45s)")
        #expect(Formats.testSummary(context: context) == "TEST notification from pilot alert-router on hub-01")
    }

    @Test func numbers() {
        #expect(Formats.oneDecimal(97.15) == "97.2")
        #expect(Formats.oneDecimal(-3.46) == "-3.5")
        #expect(Formats.oneDecimal(0) == "0.0")
        #expect(Formats.trimmed(95) == "95")
        #expect(Formats.trimmed(0.25) == "0.25")
        #expect(Formats.pathSegment("db 01/x") == "db%2001%2Fx")
    }
}

@Suite struct WebhookTests {
    @Test func versionFourKeyForKey() throws {
        let body = try parsed(Formats.webhook(notification([disk(), disk("db-02", status: .resolved, value: 80.2)]), context: context, maxAlerts: 0))
        #expect(keys(body) == ["receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                               "version", "groupKey", "truncatedAlerts"])
        #expect(body["receiver"] == .string("ops"))
        #expect(body["status"] == .string("firing"))
        #expect(body["version"] == .string("4"))
        #expect(body["externalURL"] == .string("http://hub:9190"))
        #expect(body["groupKey"] == .string("{}:{alertname=\"disk_pct\"}"))
        #expect(body["truncatedAlerts"] == .number(0))
        #expect(body["groupLabels"] == .object(JSONObject([("alertname", .string("disk_pct"))])))
        #expect(keys(body["commonLabels"]) == ["alertname", "mount", "severity"])
        #expect(keys(body["commonAnnotations"]) == ["threshold"])
        let alerts = items(body["alerts"])
        #expect(alerts.count == 2)
        let first = alerts[0]
        #expect(keys(first) == ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"])
        #expect(keys(first["labels"]) == ["alertname", "host", "severity", "mount"])
        #expect(first["labels"]?["mount"] == .string("/"))
        #expect(keys(first["annotations"]) == ["summary", "value", "threshold", "description"])
        #expect(first["annotations"]?["summary"] == .string("CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)"))
        #expect(first["annotations"]?["value"] == .string("97.14"))
        #expect(first["annotations"]?["threshold"] == .string("95"))
        #expect(first["annotations"]?["description"]?.stringValue?.hasSuffix("since 2026-12-01T23:00:00Z.") == true)
        #expect(first["startsAt"] == .string("2026-12-01T23:00:00Z"))
        #expect(first["endsAt"] == .string("0001-01-01T00:00:00Z"))
        #expect(first["generatorURL"] == .string("http://hub:9190/hosts/db-01"))
        #expect(first["fingerprint"] == .string("fp-disk-db-01"))
        #expect(alerts[1]["status"] == .string("resolved"))
        #expect(alerts[1]["endsAt"] == .string("2026-12-01T23:12:00Z"))
    }

    @Test func withoutExternalURLAndResolved() throws {
        let body = try parsed(Formats.webhook(notification([disk(status: .resolved)]), context: bare, maxAlerts: 0))
        #expect(body["status"] == .string("resolved"))
        #expect(body["externalURL"] == .string(""))
        #expect(items(body["alerts"])[0]["generatorURL"] == .string(""))
        #expect(items(body["alerts"])[0]["annotations"]?["summary"] == .string("RESOLVED db-01 disk_pct 97.1 % on / (resolved after 12m)"))
    }

    @Test func maxAlertsTruncatesButStatusAndCommonLabelsSeeAll() throws {
        let body = try parsed(Formats.webhook(notification([disk(status: .resolved), disk("db-02"), disk("db-03")]), context: context, maxAlerts: 1))
        #expect(items(body["alerts"]).count == 1)
        #expect(body["truncatedAlerts"] == .number(2))
        #expect(body["status"] == .string("firing"))
        #expect(body["commonLabels"]?["host"] == nil)
    }

    @Test func testNotificationsSayTestAndExecAddsANewline() throws {
        let test = notification([disk()], isTest: true)
        let body = try parsed(Formats.webhook(test, context: context, maxAlerts: 0))
        #expect(items(body["alerts"])[0]["annotations"]?["summary"] == .string("TEST notification from pilot alert-router on hub-01"))
        let input = Formats.execInput(test, context: context)
        #expect(input.last == UInt8(ascii: "\n"))
        #expect(try JSONValue.parse(Array(input.dropLast())) == body)
    }

    @Test func alertmanagerAlertsEndFourResendsAhead() throws {
        let body = try parsed(Formats.alertmanagerAlerts([disk(), disk("db-02", status: .resolved)], context: context, now: t0 + 60, resendSeconds: 60))
        let alerts = items(body)
        #expect(alerts.count == 2)
        #expect(keys(alerts[0]) == ["labels", "annotations", "startsAt", "endsAt", "generatorURL"])
        #expect(alerts[0]["endsAt"] == .string("2026-12-01T23:05:00Z"))
        #expect(alerts[0]["startsAt"] == .string("2026-12-01T23:00:00Z"))
        #expect(alerts[0]["labels"]?["alertname"] == .string("disk_pct"))
        #expect(alerts[1]["endsAt"] == .string("2026-12-01T23:12:00Z"))
        #expect(alerts[1]["generatorURL"] == .string("http://hub:9190/hosts/db-02"))
    }
}

@Suite struct SlackTests {
    @Test func oneAlertHasItsSummaryAndFields() throws {
        let body = try parsed(Formats.slack(notification([disk()]), context: context, channel: "#ops"))
        #expect(keys(body) == ["channel", "text", "attachments"])
        #expect(body["channel"] == .string("#ops"))
        #expect(body["text"] == .string("CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)"))
        let attachment = try #require(items(body["attachments"]).first)
        #expect(attachment["color"] == .string("#d63232"))
        #expect(attachment["title"] == .string("[FIRING:1] disk_pct"))
        #expect(attachment["title_link"] == .string("http://hub:9190/hosts/db-01"))
        #expect(attachment["footer"] == .string("pilot alert-router on hub-01"))
        #expect(attachment["ts"] == .number(Double(t0 + 30)))
        let fields = items(attachment["fields"])
        #expect(fields.map { $0["title"]?.stringValue ?? "" } == ["host", "metric", "value", "threshold", "since"])
        #expect(fields.map { $0["value"]?.stringValue ?? "" } == ["db-01", "disk_pct", "97.1 %", "above 95 %", "2026-12-01T23:00:00Z"])
    }

    @Test func groupsGetTitleColoursAndAtMostTwentyLines() throws {
        let firing = (1...25).map { disk("db-\($0)") }.map { var alert = $0; alert.severity = "warning"; return alert }
        let body = try parsed(Formats.slack(notification(firing + [disk("db-0", status: .resolved)]), context: bare, channel: nil))
        #expect(body["channel"] == nil)
        #expect(body["text"] == .string("[FIRING:25] disk_pct"))
        let attachments = items(body["attachments"])
        #expect(attachments.count == 2)
        #expect(attachments[0]["color"] == .string("#f2a900"))
        #expect(attachments[0]["title_link"] == nil)
        #expect(attachments[0]["fields"] == nil)
        let lines = attachments[0]["text"]?.stringValue?.split(separator: "\n") ?? []
        #expect(lines.count == 21)
        #expect(lines.last == "… and 5 more")
        #expect(attachments[1]["color"] == .string("#2eb67d"))
        #expect(attachments[1]["title"] == .string("[RESOLVED:1] disk_pct"))
        let resolved = try parsed(Formats.slack(notification([disk(status: .resolved), disk("db-02", status: .resolved)]), context: context, channel: nil))
        #expect(resolved["text"] == .string("[RESOLVED] disk_pct"))
        #expect(items(resolved["attachments"])[0]["title_link"] == .string("http://hub:9190"))
    }

    @Test func markupInNamesIsEscaped() throws {
        var alert = disk("<!channel>&co")
        alert.labels = []
        let body = try parsed(Formats.slack(notification([alert]), context: bare, channel: nil))
        #expect(body["text"] == .string("CRITICAL &lt;!channel&gt;&amp;co disk_pct 97.1 % (above 95 for 2m)"))
    }
}

@Suite struct PagerDutyTests {
    @Test func triggerCarriesPayloadAndDetails() throws {
        let events = try Formats.pagerDuty(notification([disk()]), routingKey: "R0UT1NGKEY", context: context, severityOverride: nil).map(parsed)
        let event = try #require(events.first)
        #expect(keys(event) == ["routing_key", "event_action", "dedup_key", "payload", "client", "client_url"])
        #expect(event["routing_key"] == .string("R0UT1NGKEY"))
        #expect(event["event_action"] == .string("trigger"))
        #expect(event["dedup_key"] == .string("fp-disk-db-01"))
        #expect(event["client"] == .string("pilot"))
        #expect(event["client_url"] == .string("http://hub:9190"))
        let payload = try #require(event["payload"])
        #expect(keys(payload) == ["summary", "severity", "source", "component", "group", "class", "timestamp", "custom_details"])
        #expect(payload["summary"] == .string("CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)"))
        #expect(payload["severity"] == .string("critical"))
        #expect(payload["source"] == .string("db-01"))
        #expect(payload["component"] == .string("disk_pct"))
        #expect(payload["group"] == .string("{}:{alertname=\"disk_pct\"}"))
        #expect(payload["class"] == .string("disk_pct"))
        #expect(payload["timestamp"] == .string("2026-12-01T23:00:00Z"))
        #expect(keys(payload["custom_details"]) == ["value", "threshold", "alertname", "host", "severity", "mount", "notification_id"])
        #expect(payload["custom_details"]?["notification_id"] == .string("n-42"))
        #expect(payload["custom_details"]?["value"] == .number(97.14))
    }

    @Test func resolveIsMinimalAndSeveritiesMap() throws {
        let events = Formats.pagerDuty(notification([health, disk("db-02", status: .resolved)]), routingKey: "K", context: bare, severityOverride: "INFO")
        #expect(events[1] == .object(JSONObject([("routing_key", .string("K")), ("event_action", .string("resolve")), ("dedup_key", .string("fp-disk-db-02"))])))
        #expect(events[0]["payload"]?["severity"] == .string("info"))
        #expect(events[0]["client_url"] == nil)
        #expect(Formats.pagerDutySeverity("warning", override: "bogus") == "warning")
        #expect(Formats.pagerDutySeverity("page-me", override: nil) == "warning")
        var long = disk()
        long.labels = [Label("note", String(repeating: "é", count: 2000))]
        let summary = Formats.pagerDuty(notification([long]), routingKey: "K", context: bare, severityOverride: nil)[0]["payload"]?["summary"]?.stringValue
        #expect(summary?.unicodeScalars.count == 1024)
        #expect(summary?.hasSuffix("…") == true)
    }
}

@Suite struct EmailTests {
    @Test func subjects() {
        #expect(Formats.email(notification([disk()]), context: context, from: "a@x", to: ["b@x"]).subject == "[CRITICAL] db-01 disk_pct 97.1 % on /")
        let five = ["web-01", "db-02", "db-01", "db-02", "app-1", "zz"].map { disk($0) }
        #expect(Formats.email(notification(Array(five.prefix(3))), context: context, from: "a@x", to: []).subject
                == "[FIRING:3] disk_pct on db-01, db-02, web-01")
        #expect(Formats.email(notification(five), context: context, from: "a@x", to: []).subject == "[FIRING:6] disk_pct on app-1, db-01, db-02 +2")
        #expect(Formats.email(notification([disk(status: .resolved)]), context: context, from: "a@x", to: []).subject
                == "[RESOLVED] db-01 disk_pct 97.1 % on /")
        #expect(Formats.email(notification([disk("b", status: .resolved), disk("a", status: .resolved)]), context: context, from: "a@x", to: []).subject
                == "[RESOLVED] disk_pct on a, b")
        #expect(Formats.email(notification([hostDown]), context: context, from: "a@x", to: []).subject == "[CRITICAL] web-01 host_down")
    }

    @Test func bodyHasSummariesDetailsLinkAndID() {
        let body = Formats.email(notification([disk(), disk("db-02", status: .resolved)]), context: context, from: "pilot@hub", to: ["ops@x"]).body
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "CRITICAL db-01 disk_pct 97.1 % on / (above 95 for 2m)")
        #expect(lines[1] == "RESOLVED db-02 disk_pct 97.1 % on / (resolved after 12m)")
        #expect(lines.contains("   Labels:    alertname=disk_pct host=db-01 severity=critical mount=/"))
        #expect(lines.contains("   Value:     97.1 %"))
        #expect(lines.contains("   Threshold: above 95"))
        #expect(lines.contains("   Since:     2026-12-01T23:00:00Z (23:00:00 UTC)"))
        #expect(lines.contains("   Resolved:  2026-12-01T23:12:00Z (23:12:00 UTC), after 12m"))
        #expect(lines.contains("Dashboard: http://hub:9190"))
        #expect(lines.last == "Notification ID: n-42")
        #expect(!Formats.email(notification([disk()]), context: bare, from: "a", to: []).body.contains("http"))
    }

    @Test func messageIsCRLFWithHeadersAndEncodedSubject() {
        var alert = disk("dé-01")
        alert.labels = [Label("mount", "/\r\nBcc: evil@x")]
        let message = Formats.emailMessage(notification([alert]), context: context, from: "pilot@hub", to: ["a@x", "b@x"])
        #expect(message.hasSuffix("\r\n"))
        let bytes = Array(message.utf8)
        for (index, byte) in bytes.enumerated() where byte == 0x0A { #expect(index > 0 && bytes[index - 1] == 0x0D) }
        let lines = message.split(separator: Character("\r\n"), omittingEmptySubsequences: false).map(String.init)
        let headerEnd = lines.firstIndex(of: "")!
        let headers = Array(lines[..<headerEnd])
        #expect(headers.first == "Date: Tue, 01 Dec 2026 23:00:30 +0000")
        #expect(headers.contains("From: pilot@hub"))
        #expect(headers.contains("To: a@x, b@x"))
        #expect(headers.contains("Message-ID: <n-42@pilot>"))
        #expect(headers.contains("MIME-Version: 1.0"))
        #expect(headers.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(headers.contains("Content-Transfer-Encoding: 8bit"))
        #expect(!headers.contains { $0.hasPrefix("Bcc:") })
        let subject = headers.first { $0.hasPrefix("Subject: ") }!
        #expect(subject.hasPrefix("Subject: =?UTF-8?B?"))
        #expect(headers.allSatisfy { $0.unicodeScalars.allSatisfy(\.isASCII) && $0.utf8.count <= 998 })
        #expect(lines[headerEnd + 1].hasPrefix("CRITICAL dé-01 disk_pct"))
    }

    @Test func base64AndEncodedWords() {
        #expect(Formats.base64(Array("".utf8)) == "")
        #expect(Formats.base64(Array("f".utf8)) == "Zg==")
        #expect(Formats.base64(Array("fo".utf8)) == "Zm8=")
        #expect(Formats.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Formats.encodedHeader("plain") == "plain")
        #expect(Formats.encodedHeader("é") == "=?UTF-8?B?w6k=?=")
        let words = Formats.encodedHeader(String(repeating: "é", count: 40)).split(separator: String("\r\n ")).map(String.init)
        #expect(words.count == 2)
        #expect(words.allSatisfy { $0.count <= 75 })
        #expect(Formats.splitLine(String(repeating: "é", count: 600), maxOctets: 998).map(\.utf8.count) == [998, 202])
    }
}
