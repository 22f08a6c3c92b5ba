import PilotCore
import PilotEvents
import Testing

@Suite struct EventValidationTests {
    @Test func aGoodMessagePasses() throws {
        let (topic, payload) = try EventMessage.validate(topic: "metrics/cpu/web-01", payload: #"{"host":"web-01","cpu_pct":42.1,"ts":1764100000}"#)
        #expect(topic.description == "metrics/cpu/web-01")
        #expect(payload == #"{"host":"web-01","cpu_pct":42.1,"ts":1764100000}"#)
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

    @Test func aPayloadOverSeveralLinesTravelsAsOne() throws {
        let payload = try EventMessage.validate(payload: "{\n  \"a\": 1,\n  \"b\": [true]\n}")
        #expect(payload == #"{"a":1,"b":[true]}"#)
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

    @Test func aConsumerJoiningMidStreamStartsAtTheFirstSequenceItSees() {
        var state = DuplicateFilter(maxAbove: 100)
        let filter = Tracker { state.isNew(publisher: $0, sequence: $1) }
        var firsts = 0
        for sequence in UInt64(100_001)...200_000 where filter.isNew(publisher: "a", sequence: sequence) { firsts += 1 }
        #expect(firsts == 100_000) // none taken for a gap below 100,001, none forgotten past maxAbove
        #expect(!filter.isNew(publisher: "a", sequence: 150_000))
        #expect(!filter.isNew(publisher: "a", sequence: 100_001))
        #expect(filter.isNew(publisher: "a", sequence: 200_001))
        _ = state
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
