import PilotCore
import PilotEvents
import Testing

func event(_ topic: String, _ sequence: UInt64, publisher: String = "p1") -> EventMessage {
    EventMessage(topic: try! Topic(topic), payload: JSONObject([("n", .number(Double(sequence)))]), publisher: publisher, sequence: sequence)
}

@Suite struct BrokerTests {
    @Test func filtersRouteAsDesignedEndToEnd() throws {
        var broker = Broker<String>()
        try broker.subscribe("all-metrics", to: TopicFilter("metrics/*"))
        try broker.subscribe("web-01", to: TopicFilter("metrics/*/web-01"))
        try broker.subscribe("exact", to: TopicFilter("metrics/cpu/web-01"))
        #expect(Set(broker.publish(event("metrics/cpu/web-01", 1))) == ["all-metrics", "web-01", "exact"])
        #expect(Set(broker.publish(event("metrics/memory/web-01", 2))) == ["all-metrics", "web-01"])
        #expect(Set(broker.publish(event("metrics/cpu/db-01", 3))) == ["all-metrics"])
        #expect(broker.publish(event("health/http/web-01", 4)).isEmpty)
        #expect(broker.take(for: "all-metrics").map(\.sequence) == [1, 2, 3])
        #expect(broker.take(for: "web-01").map(\.sequence) == [1, 2])
        #expect(broker.take(for: "exact").map(\.sequence) == [1])
    }

    @Test func aMessageReachesASubscriberOnceHoweverManyFiltersMatch() throws {
        var broker = Broker<Int>()
        try broker.subscribe(1, to: TopicFilter("metrics/*"))
        try broker.subscribe(1, to: TopicFilter("*/cpu/*"))
        try broker.subscribe(1, to: TopicFilter("metrics/*")) // again: no second copy
        broker.publish(event("metrics/cpu/web-01", 1))
        #expect(broker.take(for: 1).count == 1)
        broker.unsubscribe(1, from: try TopicFilter("metrics/*"))
        broker.unsubscribe(1, from: try TopicFilter("*/cpu/*"))
        #expect(broker.publish(event("metrics/cpu/web-01", 2)).isEmpty)
    }

    @Test func aSlowConsumerIsBoundedAndCountedWhileOthersGetEverything() throws {
        var limits = Broker<String>.Limits()
        limits.queuePerSubscriber = 100
        var broker = Broker<String>(limits: limits)
        try broker.subscribe("slow", to: TopicFilter("metrics/*"))
        try broker.subscribe("fast", to: TopicFilter("metrics/*"))
        var fastGot: [UInt64] = []
        for sequence in 1...10_000 {
            broker.publish(event("metrics/cpu/web-01", UInt64(sequence)))
            fastGot += broker.take(for: "fast").map(\.sequence)
        }
        #expect(fastGot == (1...10_000).map { UInt64($0) })
        #expect(broker.queued(for: "slow") == 100)
        #expect(broker.dropped["slow"] == 9_900)
        #expect(broker.take(for: "slow", limit: 3).map(\.sequence) == [9_901, 9_902, 9_903]) // the newest are kept
        #expect(broker.dropped["fast"] == nil)
    }

    @Test func subscriptionsPerConnectionAreBounded() throws {
        var limits = Broker<Int>.Limits()
        limits.filtersPerSubscriber = 2
        var broker = Broker<Int>(limits: limits)
        try broker.subscribe(1, to: TopicFilter("a"))
        try broker.subscribe(1, to: TopicFilter("b"))
        #expect(throws: BrokerError.tooManyFilters(2)) { try broker.subscribe(1, to: TopicFilter("c")) }
        broker.remove(1)
        #expect(broker.publish(event("a", 1)).isEmpty)
    }
}

@Suite struct EventValidationTests {
    @Test func aGoodMessagePasses() throws {
        let (topic, payload) = try EventMessage.validate(topic: "metrics/cpu/web-01", payload: #"{"host":"web-01","cpu_pct":42.1,"ts":1764100000}"#)
        #expect(topic.description == "metrics/cpu/web-01")
        #expect(payload["cpu_pct"] == .number(42.1))
    }

    @Test(arguments: [
        ("metrics//web-01", #"{"a":1}"#, "invalid topic 'metrics//web-01': it has an empty level"),
        ("metrics/*", #"{"a":1}"#, "invalid topic 'metrics/*': '*' is only allowed in subscription filters"),
        ("metrics/cpu", "[1,2]", "invalid payload: the payload must be a JSON object"),
        ("metrics/cpu", "{\"a\":", "invalid payload: invalid JSON at byte 5: unexpected end of input"),
    ])
    func badMessagesGetAClearReason(topic: String, payload: String, reason: String) {
        #expect { try EventMessage.validate(topic: topic, payload: payload) } throws: { "\($0)" == reason }
    }

    @Test func theSizeLimitIsConfigurable() {
        let big = #"{"x":""# + String(repeating: "a", count: 70_000) + #""}"#
        #expect(throws: EventError.payloadTooLarge(big.utf8.count, limit: 65_536)) { try EventMessage.validate(topic: "t", payload: big) }
        var limits = EventMessage.Limits()
        limits.maxPayloadBytes = 100_000
        #expect(throws: Never.self) { try EventMessage.validate(topic: "t", payload: big, limits: limits) }
    }
}

@Suite struct DuplicateFilterTests {
    @Test func resentMessagesAreDroppedInAnyOrder() {
        var state = DuplicateFilter()
        let filter = Tracker { state.isNew(publisher: $0, sequence: $1) }
        #expect(filter.isNew(publisher: "a", sequence: 1))
        #expect(filter.isNew(publisher: "a", sequence: 3))
        #expect(!filter.isNew(publisher: "a", sequence: 1))
        #expect(!filter.isNew(publisher: "a", sequence: 3))
        #expect(filter.isNew(publisher: "a", sequence: 2))
        #expect(!filter.isNew(publisher: "a", sequence: 2))
        #expect(filter.isNew(publisher: "b", sequence: 1)) // publishers are separate
        var random = SystemRandomNumberGenerator()
        var order = Array(4...5_000).map { UInt64($0) }
        order.shuffle(using: &random)
        var firsts = 0
        for sequence in order + order where filter.isNew(publisher: "a", sequence: sequence) { firsts += 1 }
        _ = state
        #expect(firsts == order.count)
    }

    @Test func aGapThatNeverFillsDoesNotGrowMemoryForever() {
        var state = DuplicateFilter(maxAbove: 10)
        let filter = Tracker { state.isNew(publisher: $0, sequence: $1) }
        #expect(filter.isNew(publisher: "a", sequence: 1))
        for sequence in 3...20 { #expect(filter.isNew(publisher: "a", sequence: UInt64(sequence))) } // 2 is lost for good
        #expect(!filter.isNew(publisher: "a", sequence: 15))
        #expect(!filter.isNew(publisher: "a", sequence: 5))
        _ = state
    }
}

/// Lets #expect call a mutating method (the macro cannot take `&`).
struct Tracker {
    let check: (String, UInt64) -> Bool
    init(_ check: @escaping (String, UInt64) -> Bool) { self.check = check }
    func isNew(publisher: String, sequence: UInt64) -> Bool { check(publisher, sequence) }
}
