import PilotEvents
import Testing

@Suite struct PublishVerdictsTests {
    /// The hub's PUBACK covers refused publications too (they are handled);
    /// each range settles with its own refusals, in order.
    @Test func refusalsCountAgainstTheirRangeAndTheAcknowledgementSettlesIt() {
        var verdicts = PublishVerdicts()
        let first = verdicts.expect(1...3).id
        let second = verdicts.expect(4...4).id
        verdicts.refused(2, reason: "metrics/cpu/db-01: metrics/*/HOST must name the publisher (web-01), not db-01")
        #expect(verdicts.acknowledged(upTo: 1).isEmpty) // 2 and 3 still in flight
        let settled = verdicts.acknowledged(upTo: 4)
        #expect(settled.map(\.id) == [first, second])
        var expected = PublishVerdicts.Verdict(messages: 3)
        expected.refused = 1
        expected.firstRefusal = (2, "metrics/cpu/db-01: metrics/*/HOST must name the publisher (web-01), not db-01")
        expected.confirmed = true
        #expect(settled[0].verdict == expected)
        var clean = PublishVerdicts.Verdict(messages: 1)
        clean.confirmed = true
        #expect(settled[1].verdict == clean)
        #expect(verdicts.count == 0)
    }

    /// After a reconnect the node sends what is unacknowledged again and the
    /// hub refuses it again: each refusal counts once.
    @Test func aRefusalRepeatedAfterAReconnectCountsOnce() {
        var verdicts = PublishVerdicts()
        _ = verdicts.expect(10...19)
        verdicts.refused(12, reason: "a")
        verdicts.refused(15, reason: "b")
        verdicts.refused(12, reason: "a") // resent
        verdicts.refused(15, reason: "b")
        verdicts.refused(18, reason: "c")
        verdicts.refused(99, reason: "nobody waits for this one")
        let settled = verdicts.acknowledged(upTo: 19)
        #expect(settled.count == 1)
        #expect(settled.first?.verdict.refused == 3)
        #expect(settled.first?.verdict.firstRefusal?.sequence == 12)
        #expect(settled.first?.verdict.firstRefusal?.reason == "a")
    }

    /// Time up: what is known so far, unconfirmed; the waiter is gone, so a
    /// late acknowledgement settles nothing twice.
    @Test func givingUpReturnsTheVerdictSoFarOnce() {
        var verdicts = PublishVerdicts()
        let id = verdicts.expect(1...2).id
        verdicts.refused(1, reason: "no")
        let partial = verdicts.giveUp(id)
        #expect(partial?.confirmed == false)
        #expect(partial?.refused == 1)
        #expect(verdicts.giveUp(id) == nil)
        #expect(verdicts.acknowledged(upTo: 2).isEmpty)
    }

    /// Bounded: past `maxWaiting` the oldest waiter is pushed out, unconfirmed.
    @Test func theOldestWaiterIsPushedOutPastTheBound() {
        var verdicts = PublishVerdicts(maxWaiting: 2)
        let a = verdicts.expect(1...1)
        let b = verdicts.expect(2...2)
        let c = verdicts.expect(3...3)
        #expect(a.evicted == nil)
        #expect(b.evicted == nil)
        #expect(c.evicted?.id == a.id)
        #expect(c.evicted?.verdict.confirmed == false)
        #expect(verdicts.count == 2)
        #expect(verdicts.acknowledged(upTo: 3).map(\.id) == [b.id, c.id])
    }

    @Test func mergedVerdictsAddUpAndConfirmOnlyWhenAllAre() {
        var one = PublishVerdicts.Verdict(messages: 5000)
        one.confirmed = true
        var two = PublishVerdicts.Verdict(messages: 7)
        two.refused = 2
        two.firstRefusal = (5003, "alerts/x: only the hub's own node publishes alerts")
        two.confirmed = true
        let three = PublishVerdicts.Verdict(messages: 1) // not answered
        let all = PublishVerdicts.Verdict.merged([one, two, three])
        #expect(all.messages == 5008)
        #expect(all.refused == 2)
        #expect(all.firstRefusal?.sequence == 5003)
        #expect(!all.confirmed)
        #expect(PublishVerdicts.Verdict.merged([one, two]).confirmed)
    }
}
