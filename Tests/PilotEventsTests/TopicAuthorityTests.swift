import PilotCore
import PilotEvents
import Testing

/// The hub binds every publication to its publisher: a host's own topics,
/// alerts only from the hub's node, wider scopes only when granted.
@Suite struct TopicAuthorityTests {
    func refusal(_ topic: String, _ payload: String = "{}", as host: String = "web-01", grants: [String] = []) -> String? {
        TopicAuthority.refusal(topic: try! Topic(topic), payload: payload, hostname: host, grants: grants.map { try! TopicFilter($0) })
    }

    @Test func aNodeSpeaksForItselfOnly() {
        #expect(refusal("metrics/cpu/web-01", #"{"host":"web-01","cpu_pct":3}"#) == nil)
        #expect(refusal("health/nginx/web-01") == nil)
        #expect(refusal("metrics/cpu/WEB-01") == nil) // hostnames are case-insensitive
        #expect(refusal("metrics/cpu/db-01")?.contains("must name the publisher (web-01), not db-01") == true)
        #expect(refusal("health/nginx/db-01")?.contains("--publish 'health/*'") == true)
        #expect(refusal("metrics/cpu/web-01", #"{"host":"db-01","cpu_pct":99}"#)?.contains("host must be the publisher") == true)
        #expect(refusal("metrics/cpu", #"{"host":"db-01"}"#)?.contains("not db-01") == true) // a shorter topic still names its host in the payload
        #expect(refusal("alerts/disk_pct/web-01")?.contains("--publish 'alerts/*'") == true)
        #expect(refusal("chat/ops", #"{"host":"anyone"}"#) == nil) // other topics are anyone's
    }

    @Test func grantsWidenIt() {
        #expect(refusal("metrics/cpu/db-01", #"{"host":"db-01"}"#, grants: ["metrics/*"]) == nil)
        #expect(refusal("health/ping/db-01", grants: ["metrics/*"]) != nil) // only what was granted
        #expect(refusal("alerts/disk_pct/db-01", grants: ["alerts/*"]) == nil)
        #expect(refusal("metrics/cpu/db-01", as: "an unknown node") != nil)
    }

    @Test func theHubRefusesNamingTheRuleAndTheSpoolMovesOn() throws {
        let h = try HubHarness()
        h.hub.authorize = { connection, topic, payload in
            TopicAuthority.refusal(topic: topic, payload: payload, hostname: connection == "pub" ? "web-01" : "?", grants: [])
        }
        h.hub.open("sub", peer: "S")
        h.send("sub", "SUB *")
        _ = try h.drain("sub")
        h.hub.open("pub", peer: "P")
        h.send("pub", pub(1, "metrics/cpu/web-01"), pub(2, "metrics/cpu/db-01"), pub(3, "alerts/cpu_pct/db-01"), pub(4, "metrics/memory/web-01"))
        try h.commit()
        #expect(try h.messages("sub").map(\.sequence) == [1, 4])
        let replies = try h.drain("pub")
        let errors = replies.compactMap { if case let .error(sequence, reason) = $0 { (sequence, reason) } else { nil } }
        #expect(errors.map(\.0) == [2, 3])
        #expect(errors.first?.1.hasPrefix("metrics/cpu/db-01: metrics/*/HOST must name the publisher") == true)
        #expect(replies.contains(.published(upTo: 4))) // acknowledged past the refusals: nothing stalls
        #expect(h.hub.statistics.refusedAuthority == 2)
        // In process (the hub's own node) nothing is checked: its aggregator publishes alerts.
        h.hub.open("self", peer: "L", local: true)
        h.hub.apply(.publish(sequence: 1, topic: try Topic("alerts/cpu_pct/db-01"), payload: "{}"), from: "self")
        try h.commit()
        #expect(try h.messages("sub").map(\.topic.description) == ["alerts/cpu_pct/db-01"])
    }
}
