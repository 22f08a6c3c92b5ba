import PilotCore
import PilotSQLite
import Testing
@testable import PilotAlerts

@Suite struct DeliveryLaneTests {
    func lane(min: Int64 = 1_000, max: Int64 = 60_000, maxAge: Int64 = 86_400, rate: Int? = nil, per: Int = 1) -> DeliveryLane {
        var options = DeliveryLane.Options()
        options.minBackoff = min
        options.maxBackoff = max
        options.maxAge = maxAge
        options.rateCount = rate
        options.ratePerSeconds = per
        return DeliveryLane(options: options, seed: 42)
    }

    @Test func backoffDoublesWithJitterUpToItsCapAndResetsOnDelivery() {
        var lane = lane()
        var now: Int64 = 1_000_000
        var delays: [Int64] = []
        for _ in 0..<10 {
            guard case .retry(let at) = lane.record(.failed("HTTP 503"), createdAt: 1_000, now: now) else { Issue.record("not retried"); return }
            delays.append(at - now)
            now = at
        }
        let steps: [Int64] = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]
        for (delay, step) in zip(delays, steps) { #expect(delay >= step / 2 && delay <= step, "delay \(delay) for step \(step)") }
        #expect(Set(delays.suffix(4)).count > 1) // jittered, not in lockstep
        #expect(lane.attempts == 10)
        #expect(lane.record(.delivered, createdAt: 1_000, now: now) == .delivered)
        #expect(lane.attempts == 0 && lane.backoff == 1_000)
    }

    @Test func retryAfterIsNeverCutShort() {
        var lane = lane()
        let decision = lane.record(.failed("HTTP 429", retryAfter: 7_000), createdAt: 0, now: 10_000)
        #expect(decision == .retry(at: 17_000))
        #expect(lane.readyAt(now: 12_000) == 17_000)
        #expect(DeliveryLane.outcome(status: 429, retryAfter: "3", body: "slow down") == .failed("HTTP 429 slow down", retryAfter: 3_000))
        #expect(DeliveryLane.outcome(status: 503, retryAfter: "Wed, 21 Oct 2015 07:28:00 GMT", body: "") == .failed("HTTP 503", retryAfter: nil))
        #expect(DeliveryLane.outcome(status: 204, retryAfter: nil, body: "") == .delivered)
        #expect(DeliveryLane.outcome(status: 400, retryAfter: nil, body: "bad json") == .refused("HTTP 400 bad json"))
    }

    @Test func pastItsMaximumAgeANotificationIsGivenUpSayingWhy() {
        var lane = lane(maxAge: 60)
        guard case .retry = lane.record(.failed("connection refused"), createdAt: 0, now: 30_000) else { Issue.record("not retried"); return }
        guard case .giveUp(let reason) = lane.record(.failed("connection refused"), createdAt: 0, now: 61_000) else {
            Issue.record("not given up")
            return
        }
        #expect(reason.contains("not delivered within 1m") && reason.contains("connection refused"))
        guard case .giveUp(let refused) = lane.record(.refused("HTTP 404"), createdAt: 0, now: 1) else { Issue.record("a 404 retried"); return }
        #expect(refused == "refused: HTTP 404")
    }

    @Test func theRateLimitSpacesSends() {
        var lane = lane(rate: 2, per: 1)
        var now: Int64 = 0
        var starts: [Int64] = []
        while starts.count < 6 {
            let at = lane.readyAt(now: now)
            if at <= now {
                lane.started(now: now)
                starts.append(now)
            } else {
                now = at
            }
        }
        #expect(starts == [0, 0, 500, 1_000, 1_500, 2_000]) // a burst of two, then one every 500 ms
    }
}

@Suite struct RouterOutboxTests {
    func scratch() -> String { "/tmp/pilot-outbox-\(UInt64.random(in: 0...UInt64.max)).db" }

    func notification(_ id: String, _ receiver: String) -> Notification {
        Notification(id: id, receiver: receiver, groupKey: "{}:{alertname=\"disk_pct\"}", groupLabels: [Label("alertname", "disk_pct")],
                     alerts: [alert("disk_pct", "db-01", labels: [Label("mount", "/")])], createdAt: 5)
    }

    @Test func notificationsLeaveInOrderOnlyWhenFinishedAndSurviveAReopen() throws {
        let path = scratch()
        do {
            let outbox = try RouterOutbox(path: path)
            var router = try core()
            _ = router.receive(alert("disk_pct", "db-09"), tags: [], now: 0)
            try outbox.commit(router.takeChanges(), notifications: [notification("a", "hook"), notification("b", "hook"), notification("c", "slack")], now: 7)
            #expect(try outbox.snapshot() == router.snapshot)
            #expect(outbox.depth("hook") == 2 && outbox.depth("slack") == 1)
            let head = try #require(try outbox.head("hook"))
            #expect(head.notification == notification("a", "hook"))
            #expect(head.createdAt == 7)
            try outbox.retry(head, progress: 0, error: "HTTP 503")
            #expect(try outbox.head("hook")?.attempts == 1)
            #expect(try outbox.head("hook")?.lastError == "HTTP 503")
            #expect(outbox.counters["hook"]?.retried == 1)
        }
        let reopened = try RouterOutbox(path: path) // a restart: nothing lost
        #expect(reopened.depth("hook") == 2)
        #expect(try reopened.snapshot()?.groups.count == 1)
        let head = try #require(try reopened.head("hook"))
        #expect(head.notification.id == "a" && head.attempts == 1)
        try reopened.finish(head, delivered: true)
        #expect(try reopened.head("hook")?.notification.id == "b")
        #expect(reopened.counters["hook"] == RouterOutbox.Counters(delivered: 1, retried: 1, failed: 0, lastError: nil))
        try reopened.finish(try #require(try reopened.head("hook")), delivered: false, error: "given up")
        #expect(try reopened.head("hook") == nil)
        #expect(reopened.counters["hook"]?.failed == 1 && reopened.counters["hook"]?.lastError == "given up")
        #expect(try RouterOutbox(path: path).counters["hook"]?.failed == 1)
    }

    @Test func anUnreadableRowIsCountedAsFailedNotRetriedForever() throws {
        let path = scratch()
        let outbox = try RouterOutbox(path: path)
        try outbox.connection.execute("INSERT INTO outbox(receiver, notification, created_at) VALUES('hook', '{broken', 1)")
        try outbox.commit(nil, notifications: [notification("ok", "hook")], now: 2)
        #expect(try outbox.head("hook")?.notification.id == "ok")
        #expect(outbox.counters["hook"]?.failed == 1)
    }
}

@Suite struct ReceiverSpecTests {
    @Test func eachKindParsesWithItsOptions() throws {
        let slack = try ReceiverSpec(parsing: "slack:ops=@/etc/pilot/slack-url")
        #expect(slack.kind == .slack && slack.name == "ops" && slack.target == .file("/etc/pilot/slack-url"))
        #expect(slack.rate?.count == 1 && slack.rate?.perSeconds == 1) // Slack's own limit by default
        let pd = try ReceiverSpec(parsing: "pagerduty:oncall=env:PD_KEY url=http://127.0.0.1:9/v2/enqueue")
        #expect(pd.target == .environment("PD_KEY") && pd.options["url"] == "http://127.0.0.1:9/v2/enqueue" && pd.rate == nil)
        let mail = try ReceiverSpec(parsing: "email:team=smtp://mail.example.com:587 to=a@example.com,b@example.com user=pilot password=@/etc/pw rate=10/m")
        #expect(mail.options["to"] == "a@example.com,b@example.com" && mail.rate?.count == 10 && mail.rate?.perSeconds == 60)
        #expect(mail.inlineSecrets.isEmpty)
        let exec = try ReceiverSpec(parsing: "exec:notify=/usr/local/bin/notify arg=--loud arg=-v timeout=5s send_resolved=false")
        #expect(exec.options["arg"] == "--loud\u{1F}-v" && exec.duration("timeout", default: 10) == 5 && !exec.sendResolved)
        #expect(try ReceiverSpec(parsing: "alertmanager:am=http://127.0.0.1:9093 resend=30s").duration("resend", default: 60) == 30)
    }

    @Test func badReceiversSayWhatIsWrongWithoutShowingSecrets() {
        func error(_ text: String) -> String {
            do { _ = try ReceiverSpec(parsing: text); return "accepted" } catch { return error.description }
        }
        #expect(error("sms:ops=123").contains("unknown receiver kind 'sms'"))
        #expect(error("slack=ops").contains("use KIND:NAME=TARGET"))
        #expect(error("webhook:hook=ftp://x/").contains("not an http:// or https:// URL"))
        #expect(error("webhook:hook=http://x/ color=red").contains("webhook receivers have no option 'color'"))
        #expect(error("email:team=smtp://mail:25").contains("need to=ADDRESS"))
        #expect(error("exec:x=notify").contains("absolute path"))
        #expect(error("slack:ops=https://x/ rate=fast").contains("rate 'fast'"))
        let secret = error("email:team=smtp://mail:25 to=a@b password=hunter2 tls=maybe")
        #expect(secret.contains("tls must be") && !secret.contains("hunter2"))
        let slackURL = error("slack:ops=https://hooks.slack.com/services/T000/B000/SECRETSECRET rate=x")
        #expect(!slackURL.contains("SECRETSECRET") && slackURL.contains("https://hooks.slack.com/…"))
    }

    @Test func inlineSecretsAreNamedAndTargetsMasked() throws {
        let slack = try ReceiverSpec(parsing: "slack:ops=https://hooks.slack.com/services/T000/B000/SECRET")
        #expect(slack.inlineSecrets == ["slack:ops's URL"])
        #expect(slack.targetDescription == "https://hooks.slack.com/…")
        let pd = try ReceiverSpec(parsing: "pagerduty:oncall=0123456789abcdef0123456789abcdef")
        #expect(pd.targetDescription == "routing key …cdef")
        let mail = try ReceiverSpec(parsing: "email:m=smtp://u@mail:25 to=a@b password=pw")
        #expect(mail.inlineSecrets == ["email:m's password"])
    }

    @Test func secretsResolveFromFilesAndTheEnvironment() throws {
        let env = ["SLACK_URL": "https://hooks.slack.com/x"]
        #expect(try SecretSource("env:SLACK_URL").resolve(environment: { env[$0] }, readFile: { _ in "" }) == "https://hooks.slack.com/x")
        #expect(try SecretSource("@/f").resolve(environment: { _ in nil }, readFile: { _ in "  key-1 \n# more\n" }) == "key-1")
        #expect(throws: ParseError("secret", "env:NOPE", "the environment variable NOPE is not set")) {
            try SecretSource("env:NOPE").resolve(environment: { _ in nil }, readFile: { _ in "" })
        }
        #expect(throws: ParseError("secret", "@/f", "the file is empty")) {
            try SecretSource("@/f").resolve(environment: { _ in nil }, readFile: { _ in "\n" })
        }
        #expect(SecretSource("hunter2").description == "(inline)")
    }
}
