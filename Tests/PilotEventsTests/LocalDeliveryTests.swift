import PilotCore
import PilotEvents
import Testing

/// In-process connections: typed requests in, values out, no line of text
/// on the way, beside peers that get the same messages as lines.
@Suite struct LocalDeliveryTests {
    func values(_ h: HubHarness, _ connection: String) -> [EventDelivery] {
        var out: [EventDelivery] = []
        while let (deliveries, dropped) = h.hub.nextDeliveries(for: connection) {
            #expect(dropped == 0)
            out += deliveries
        }
        return out
    }

    @Test func aLocalSubscriberGetsValuesWhileAPeerGetsLinesOfTheSameMessages() throws {
        let h = try HubHarness()
        h.hub.open("aggregator", peer: "SELF/local", local: true)
        h.hub.apply(.subscribe(try TopicFilter("metrics/*"), durable: nil), from: "aggregator")
        h.hub.open("peer", peer: "P")
        h.send("peer", "SUB metrics/*")
        _ = try h.drain("peer")
        h.hub.open("pub", peer: "W")
        h.send("pub", "EPOCH 1f", pub(1, "metrics/cpu/web-01"), pub(2, "health/http/web-01"), pub(3, "metrics/memory/web-01"))
        try h.commit()
        let local = values(h, "aggregator")
        #expect(local.map(\.topic.description) == ["metrics/cpu/web-01", "metrics/memory/web-01"])
        #expect(local.map(\.sequence) == [1, 3] && local.allSatisfy { $0.publisher == "W/1f" })
        #expect(local[0].object?["n"] == .number(1))
        #expect(try h.messages("peer").map(\.sequence) == [1, 3])
        #expect(h.hub.nextFrame(for: "aggregator") == nil) // no text for the process
    }

    /// The hub's own publications are numbered like any publisher's, so
    /// that a consumer discarding duplicates by (publisher, sequence) keeps them.
    @Test func localPublicationsAreNumberedAndAcknowledgedWithoutAReader() throws {
        let h = try HubHarness()
        h.hub.open("local", peer: "SELF/local", local: true)
        h.hub.apply(.epoch("abc"), from: "local")
        h.hub.open("audit", peer: "A")
        h.send("audit", "SUB alerts/*")
        _ = try h.drain("audit")
        for sequence in 1...3 {
            h.hub.apply(.publish(sequence: UInt64(sequence), topic: try Topic("alerts/cpu_pct/web-0\(sequence)"), payload: #"{"status":"firing"}"#), from: "local")
        }
        try h.commit()
        let got = try h.messages("audit")
        #expect(got.map(\.sequence) == [1, 2, 3] && got.allSatisfy { $0.publisher == "SELF/local/abc" })
        #expect(h.hub.nextDeliveries(for: "local") == nil)
        // A resend under the same numbers is a duplicate, not a second alert.
        h.hub.apply(.publish(sequence: 2, topic: try Topic("alerts/cpu_pct/web-02"), payload: #"{"status":"firing"}"#), from: "local")
        try h.commit()
        #expect(try h.messages("audit").isEmpty && h.hub.statistics.duplicates == 1)
    }

    /// A durable in-process subscriber (the aggregator, the store on the hub)
    /// resumes after its last ack across a hub restart, catching up from the log.
    @Test func aDurableLocalSubscriberResumesAfterItsAckFromTheLog() throws {
        var options = EventHub<String>.Options()
        options.replayBatch = 7
        let h = try HubHarness(options: options)
        h.hub.open("store", peer: "SELF/local", local: true)
        h.hub.apply(.subscribe(try TopicFilter("metrics/*"), durable: "store"), from: "store")
        h.hub.open("pub", peer: "W")
        for i in 1...20 { h.send("pub", pub(i, "metrics/cpu/a")) }
        try h.commit()
        let first = values(h, "store")
        #expect(first.map(\.sequence) == (1...20).map { UInt64($0) })
        h.hub.apply(.ack(first[11].id), from: "store")
        try h.commit()
        try h.restart(options: options)
        h.hub.open("pub", peer: "W")
        for i in 21...30 { h.send("pub", pub(i, "metrics/cpu/a")) }
        try h.commit()
        h.hub.open("store", peer: "SELF/local", local: true)
        h.hub.apply(.subscribe(try TopicFilter("metrics/*"), durable: "store"), from: "store")
        #expect(values(h, "store").map(\.sequence) == (13...30).map { UInt64($0) })
        h.send("pub", pub(31, "metrics/cpu/a"))
        try h.commit()
        #expect(values(h, "store").map(\.sequence) == [31]) // live again
    }

    @Test func everyCopyOfADeliveryReadsOneParse() throws {
        let delivery = EventDelivery(id: 1, message: EventMessage(topic: try Topic("metrics/cpu/a"), payload: #"{"cpu_pct":42.5}"#, publisher: "P/1", sequence: 1))
        let copy = delivery
        #expect(delivery.object?["cpu_pct"] == .number(42.5))
        #expect(copy.object?["cpu_pct"] == .number(42.5))
        let notObject = EventDelivery(id: 2, message: EventMessage(topic: try Topic("t"), payload: "[1]", publisher: "P/1", sequence: 2))
        #expect(notObject.object == nil)
    }
}
