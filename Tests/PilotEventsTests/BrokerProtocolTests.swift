import PilotCore
import PilotEvents
import Testing

@Suite struct BrokerProtocolTests {
    @Test func requestsAndRepliesRoundTrip() throws {
        let requests: [BrokerRequest] = [
            .subscribe(try TopicFilter("metrics/*")), .unsubscribe(try TopicFilter("alerts/*/db-01")),
            .publish(sequence: 7, topic: try Topic("metrics/cpu/web-01"), payload: JSONObject([("host", .string("web-01")), ("cpu_pct", .number(42.1))])),
        ]
        for request in requests { #expect(try BrokerRequest.parse(request.encoded) == request) }
        let replies: [BrokerReply] = [
            .subscribed(try TopicFilter("metrics/*")), .unsubscribed(try TopicFilter("a")), .published(sequence: 9),
            .error(sequence: 3, reason: "nope"), .error(sequence: nil, reason: "bad"),
            .message(EventMessage(topic: try Topic("alerts/disk_pct/db-01"), payload: JSONObject([("severity", .string("critical"))]), publisher: "KEY", sequence: 12)),
        ]
        for reply in replies { #expect(try BrokerReply.parse(reply.encoded) == reply) }
    }

    @Test func aSessionSubscribesPublishesAndRoutes() throws {
        var broker = Broker<String>()
        #expect(broker.handle(Array(#"{"op":"sub","filter":"metrics/*"}"#.utf8), from: "store", publisher: "S").reply == .subscribed(try TopicFilter("metrics/*")))
        let (reply, receivers) = broker.handle(Array(#"{"op":"pub","seq":1,"topic":"metrics/cpu/web-01","payload":{"cpu_pct":42.1}}"#.utf8), from: "web", publisher: "WEB-KEY")
        #expect(reply == .published(sequence: 1))
        #expect(receivers == ["store"])
        #expect(broker.take(for: "store").map(\.publisher) == ["WEB-KEY"])
    }

    @Test(arguments: [
        (#"{"op":"pub","seq":4,"topic":"metrics//x","payload":{}}"#, UInt64?(4), "invalid topic 'metrics//x': it has an empty level"),
        (#"{"op":"pub","seq":5,"topic":"m","payload":[1]}"#, UInt64?(5), "invalid payload: the payload must be a JSON object"),
        (#"{"op":"pub","seq":0,"topic":"m","payload":{}}"#, UInt64?.none, "\"seq\" must be a positive whole number"),
        (#"{"op":"pub","seq":1e30,"topic":"m","payload":{}}"#, UInt64?.none, "\"seq\" must be a positive whole number"),
        (#"{"op":"sub","filter":"metrics/cp*"}"#, UInt64?.none, "invalid filter 'metrics/cp*': '*' must be a whole level, not part of 'cp*'"),
        (#"{"op":"dance"}"#, UInt64?.none, "unknown operation \"dance\""),
        ("not json", UInt64?.none, "invalid JSON at byte 1: expected 'null'"),
    ])
    func badRequestsGetAClearErrorBack(text: String, sequence: UInt64?, reason: String) {
        var broker = Broker<Int>()
        let (reply, receivers) = broker.handle(Array(text.utf8), from: 1, publisher: "P")
        #expect(reply == .error(sequence: sequence, reason: reason))
        #expect(receivers.isEmpty)
    }

    @Test func oversizedPayloadsAreRefusedWithTheLimit() {
        var broker = Broker<Int>()
        let big = #"{"op":"pub","seq":2,"topic":"t","payload":{"x":""# + String(repeating: "a", count: 1000) + #""}}"#
        var limits = EventMessage.Limits()
        limits.maxPayloadBytes = 500
        let (reply, _) = broker.handle(Array(big.utf8), from: 1, publisher: "P", limits: limits)
        guard case .error(sequence: 2, let reason) = reply else { Issue.record("accepted: \(reply)"); return }
        #expect(reason.contains("exceeds the limit of 500 bytes"))
    }
}
