import PilotCore
import Testing
@testable import PilotAlerts

@Suite struct AlertEventTests {
    func object(_ text: String) throws -> JSONObject {
        guard case .object(let object) = try JSONValue.parse(text) else { throw ParseError("test", text, "not an object") }
        return object
    }

    @Test func readsTheAggregatorsNotice() throws {
        let payload = try object(#"{"host":"db-01","metric":"disk_pct","value":97.1,"threshold":95,"severity":"critical","ts":1764100120,"status":"firing","fingerprint":"a1b2c3d4e5f60718","starts_at":1764100000,"labels":{"mount":"/","device":"/dev/vda1"},"comparison":"above","for_s":120}"#)
        let alert = try AlertEvent(topic: "alerts/disk_pct/db-01", payload: payload)
        #expect(alert.fingerprint == "a1b2c3d4e5f60718" && alert.status == .firing && alert.name == "disk_pct" && alert.host == "db-01")
        #expect(alert.severity == "critical" && alert.value == 97.1 && alert.threshold == 95 && alert.comparison == "above" && alert.forSeconds == 120)
        #expect(alert.startsAt == 1_764_100_000 && alert.at == 1_764_100_120 && alert.endsAt == nil)
        #expect(alert.labels == [Label("device", "/dev/vda1"), Label("mount", "/")]) // sorted by name
        #expect(alert.allLabels.prefix(3) == [Label("alertname", "disk_pct"), Label("host", "db-01"), Label("severity", "critical")])
        #expect(alert.label("metric") == "disk_pct" && alert.label("status") == "firing" && alert.label("mount") == "/" && alert.label("nope") == nil)
        #expect(try AlertEvent(record: .object(alert.record)) == alert)
    }

    @Test func theTopicFillsInWhatThePayloadLeavesOut() throws {
        let alert = try AlertEvent(topic: "alerts/host_down/web-01", payload: try object(#"{"status":"resolved","fingerprint":"f","ts":5,"last_seen":1,"last_address":"10.0.0.5:4000"}"#))
        #expect(alert.name == "host_down" && alert.host == "web-01" && alert.severity == "warning" && alert.startsAt == 5)
        #expect(alert.lastSeen == 1 && alert.lastAddress == "10.0.0.5:4000")
    }

    @Test func anIncompleteNoticeIsRefusedSayingWhat() throws {
        func reason(_ text: String) throws -> String {
            let payload = try object(text)
            do { _ = try AlertEvent(topic: "alerts", payload: payload); return "accepted" } catch { return error.reason }
        }
        #expect(try reason(#"{"status":"firing","metric":"m","host":"h","ts":1}"#) == "it has no fingerprint")
        #expect(try reason(#"{"fingerprint":"f","status":"burning","metric":"m","host":"h","ts":1}"#) == "its status is not firing or resolved")
        #expect(try reason(#"{"fingerprint":"f","status":"firing","host":"h","ts":1}"#) == "it names no metric")
        #expect(try reason(#"{"fingerprint":"f","status":"firing","metric":"m","ts":1}"#) == "it names no host")
        #expect(try reason(#"{"fingerprint":"f","status":"firing","metric":"m","host":"h"}"#) == "it has no time (ts)")
        // Labels cannot pose as the alert's own.
        let alert = try AlertEvent(topic: "alerts/m/h", payload: try object(#"{"fingerprint":"f","status":"firing","ts":1,"labels":{"host":"other","severity":"critical","k":"v"}}"#))
        #expect(alert.host == "h" && alert.severity == "warning" && alert.labels == [Label("k", "v")])
    }

    @Test func notificationsRoundTripAndKnowTheirCommonLabels() throws {
        let a = AlertEvent(fingerprint: "1", status: .firing, name: "disk_pct", host: "db-01", severity: "critical", labels: [Label("mount", "/")], startsAt: 1, at: 1)
        let b = AlertEvent(fingerprint: "2", status: .resolved, name: "disk_pct", host: "db-02", severity: "critical", labels: [Label("mount", "/")],
                           startsAt: 1, endsAt: 9, at: 9)
        let notification = Notification(id: "r-1", receiver: "hook", groupKey: "{}:{alertname=\"disk_pct\"}", groupLabels: [Label("alertname", "disk_pct")],
                                        alerts: [a, b], createdAt: 10)
        #expect(notification.status == .firing && notification.firing == [a] && notification.resolved == [b])
        #expect(notification.commonLabels == [Label("alertname", "disk_pct"), Label("mount", "/"), Label("severity", "critical")])
        #expect(try Notification(record: .object(notification.record)) == notification)
        #expect(throws: ParseError.self) { try Notification(record: .object(JSONObject([("id", .string("x"))]))) }
    }
}
