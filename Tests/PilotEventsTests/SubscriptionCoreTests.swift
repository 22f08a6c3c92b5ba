import PilotCore
import PilotEvents
import Testing

@Suite struct SubscriptionCoreTests {
    func lines(_ replies: [EventReply]) -> [UInt8] { Array(replies.map { $0.line + "\n" }.joined().utf8) }
    func msg(_ id: UInt64, _ publisher: String, _ sequence: UInt64) throws -> EventReply {
        .message(id: id, EventMessage(topic: try Topic("metrics/cpu/web-01"), payload: #"{"n":\#(id)}"#, publisher: publisher, sequence: sequence))
    }
    func delivered(_ events: [SubscriptionCore.Event]) -> [String] {
        events.flatMap { event -> [String] in
            guard case .deliver(let bytes) = event else { return [] }
            return EventLines.split(bytes).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    @Test func confirmedOnlyOnceTheHubTookEveryFilter() throws {
        let cpu = try TopicFilter("metrics/cpu/*"), health = try TopicFilter("health/*")
        var core = SubscriptionCore(filters: [cpu, health, cpu], durable: false)
        #expect(core.received(lines([.subscribed(cpu)]), consumerHasRoom: true).isEmpty)
        #expect(core.received(lines([.subscribed(health)]), consumerHasRoom: true) == [.confirmed])
        // After a reconnect the hub confirms again; that is not news to the consumer.
        core.connected()
        #expect(core.received(lines([.version(EventRequest.protocolVersion), .subscribed(cpu), .subscribed(health)]), consumerHasRoom: true).isEmpty)
        #expect(core.isConfirmed)
    }

    /// Mixed versions refuse each other by name: a hub whose first answer
    /// is not its VERSION (an older pilot says "unknown request") ends the
    /// subscription with a reason a person can act on.
    @Test func aHubThatDoesNotSayItsVersionFirstIsRefused() throws {
        let filter = try TopicFilter("metrics/*")
        var core = SubscriptionCore(filters: [filter], durable: true)
        core.connected()
        #expect(String(decoding: core.hello(durable: "store"), as: UTF8.self) == "VERSION \(EventRequest.protocolVersion)\nSUB metrics/* store\n")
        let events = core.received(lines([.error(sequence: 0, reason: "unknown request 'VERSION'"), .subscribed(filter)]), consumerHasRoom: true)
        #expect(events.count == 1)
        guard case .refused(let reason)? = events.first else { Issue.record("not refused: \(events)"); return }
        #expect(reason.contains("older event protocol") && reason.contains("same pilot version"))
        var newer = SubscriptionCore(filters: [filter], durable: false)
        newer.connected()
        #expect(newer.received(lines([.version(EventRequest.protocolVersion + 1)]), consumerHasRoom: true).count == 1)
    }

    @Test func aRefusalBeforeConfirmationEndsItAndOneAfterIsAWarning() throws {
        let filter = try TopicFilter("metrics/*")
        var first = SubscriptionCore(filters: [filter], durable: true)
        #expect(first.received(lines([.error(sequence: 0, reason: "durable subscriber store was taken over")]), consumerHasRoom: true)
            == [.refused("durable subscriber store was taken over")])
        var held = SubscriptionCore(filters: [filter], durable: true)
        _ = held.received(lines([.subscribed(filter)]), consumerHasRoom: true)
        #expect(held.received(lines([.error(sequence: 0, reason: "slow")]), consumerHasRoom: true) == [.warning("slow")])
    }

    /// A resend after a reconnect (the same publisher and sequence) reaches
    /// the consumer once; unnumbered messages always pass.
    @Test func resentMessagesAreDiscardedAcrossReconnects() throws {
        let filter = try TopicFilter("metrics/*")
        var core = SubscriptionCore(filters: [filter], durable: true)
        _ = core.received(lines([.subscribed(filter)]), consumerHasRoom: true)
        let first = delivered(core.received(lines([try msg(1, "W/1", 1), try msg(2, "W/1", 2), try msg(3, "W/1", 0)]), consumerHasRoom: true))
        #expect(first.count == 3)
        core.connected()
        let again = delivered(core.received(lines([.version(EventRequest.protocolVersion), .subscribed(filter), try msg(2, "W/1", 2), try msg(4, "W/1", 3), try msg(5, "W/1", 0)]), consumerHasRoom: true))
        #expect(again == [try msg(4, "W/1", 3).line, try msg(5, "W/1", 0).line])
        #expect(core.duplicatesDiscarded == 1)
    }

    /// A full consumer: a durable subscription still hands over what came
    /// and pauses (the hub keeps the rest); a plain one drops and owes the
    /// consumer one DROP line when it reads again. The hub's own DROP passes on.
    @Test func aFullConsumerPausesADurableSubscriptionAndCostsAPlainOneMessages() throws {
        let filter = try TopicFilter("metrics/*")
        var durable = SubscriptionCore(filters: [filter], durable: true)
        let events = durable.received(lines([try msg(1, "W/1", 1)]), consumerHasRoom: false)
        #expect(events.count == 2 && events.last == .pause && delivered(events).count == 1)

        var plain = SubscriptionCore(filters: [filter], durable: false)
        #expect(plain.received(lines([try msg(1, "W/1", 1), try msg(2, "W/1", 2)]), consumerHasRoom: false).isEmpty)
        #expect(plain.droppedHere == 2)
        #expect(plain.consumerReady() == Array("DROP 2\n".utf8))
        #expect(plain.consumerReady() == nil)
        #expect(delivered(plain.received(lines([.dropped(7)]), consumerHasRoom: true)) == ["DROP 7"])
        // The hub's DROP that arrives while the consumer is full joins the count owed.
        _ = plain.received(lines([.dropped(5), try msg(3, "W/1", 3)]), consumerHasRoom: false)
        #expect(plain.consumerReady() == Array("DROP 6\n".utf8))
    }

    /// A plain subscription that reconnects says where it was, after its
    /// filters: from the hub's POSITION before any message came, then from
    /// the last message it had or dropped. A durable one never does.
    @Test func aPlainSubscriptionResumesWhereItWas() throws {
        let filter = try TopicFilter("metrics/*")
        var plain = SubscriptionCore(filters: [filter], durable: false)
        plain.connected()
        #expect(String(decoding: plain.hello(durable: nil), as: UTF8.self) == "VERSION \(EventRequest.protocolVersion)\nSUB metrics/*\n")
        _ = plain.received(lines([.version(EventRequest.protocolVersion), .subscribed(filter), .position(40)]), consumerHasRoom: true)
        plain.connected()
        #expect(String(decoding: plain.hello(durable: nil), as: UTF8.self).hasSuffix("SUB metrics/*\nRESUME 40\n"))
        _ = plain.received(lines([.version(EventRequest.protocolVersion), .subscribed(filter), .position(45), try msg(46, "W/1", 1)]), consumerHasRoom: true)
        _ = plain.received(lines([try msg(47, "W/1", 2)]), consumerHasRoom: false) // dropped here, and counted
        #expect(plain.position == 47)
        #expect(String(decoding: plain.hello(durable: nil), as: UTF8.self).hasSuffix("RESUME 47\n"))
        // An older hub refuses the line it does not know: after confirmation, that is a warning only.
        plain.connected()
        let events = plain.received(lines([.version(EventRequest.protocolVersion), .subscribed(filter), .error(sequence: 0, reason: "unknown request 'RESUME'")]), consumerHasRoom: true)
        #expect(events == [.warning("unknown request 'RESUME'")])

        var durable = SubscriptionCore(filters: [filter], durable: true)
        _ = durable.received(lines([.subscribed(filter), try msg(9, "W/1", 1)]), consumerHasRoom: true)
        #expect(!String(decoding: durable.hello(durable: "store"), as: UTF8.self).contains("RESUME"))
    }
}
