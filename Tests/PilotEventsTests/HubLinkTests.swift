import PilotEvents
import Testing

@Suite struct HubLinkTests {
    let second: Int64 = 1_000_000

    static var exact: HubLink.Timing {
        var timing = HubLink.Timing()
        timing.jitter = 0
        return timing
    }

    @Test func failuresBackOffDoublingUpToTheCapAndAnAnswerResetsIt() {
        var link = HubLink(timing: Self.exact)
        let step1 = link.shouldConnect(now: 0)
        #expect(step1)
        let step2 = link.shouldConnect(now: 0)
        #expect(!step2) // one attempt at a time
        link.failed("cannot reach the hub", now: 0)
        #expect(link.lastError == "cannot reach the hub")
        let step3 = link.shouldConnect(now: second / 2 - 1)
        #expect(!step3)
        let step4 = link.shouldConnect(now: second / 2)
        #expect(step4)
        var now = second / 2
        var waits: [Int64] = []
        for _ in 0..<6 {
            link.failed("away", now: now)
            var wait: Int64 = 0
            while !link.shouldConnect(now: now + wait) { wait += 100_000 }
            waits.append(wait)
            now += wait
        }
        #expect(waits == [1, 2, 4, 5, 5, 5].map { $0 * second })
        link.connected(now: now)
        link.heard(now: now)
        link.failed("reset", now: now)
        let step5 = link.shouldConnect(now: now + second / 2 - 1)
        #expect(!step5)
        let step6 = link.shouldConnect(now: now + second / 2)
        #expect(step6)
    }

    /// A thousand nodes cut off at the same instant retry spread over the
    /// jitter, each within its own backoff, not all at once.
    @Test func retriesOfLinksThatFailedTogetherAreSpreadOverTheJitter() {
        var retries: [Int64] = []
        for seed in 0..<1000 {
            var link = HubLink(seed: UInt64(seed))
            _ = link.shouldConnect(now: 0)
            link.failed("hub restarted", now: 0)
            var at: Int64 = 0
            while !link.shouldConnect(now: at) { at += 10_000 }
            retries.append(at)
        }
        let backoff = HubLink.Timing().initialBackoff
        #expect(retries.allSatisfy { $0 >= backoff / 2 && $0 <= backoff })
        // 26 slots of 10 ms between a half and all of the backoff: none holds a tenth.
        let slots = Dictionary(grouping: retries) { $0 }
        #expect(slots.count >= 24)
        #expect(slots.values.allSatisfy { $0.count < 100 })
    }

    @Test func aUserWaitingForcesAnAttemptDespiteTheBackoff() {
        var link = HubLink()
        _ = link.shouldConnect(now: 0)
        link.failed("away", now: 0)
        let step7 = link.shouldConnect(now: 1, force: true)
        #expect(step7)
    }

    /// A refusal such as "not trusted" stays the error until the hub
    /// answers, and not a moment longer.
    @Test func theLastErrorLastsUntilTheHubAnswers() {
        var link = HubLink()
        _ = link.shouldConnect(now: 0)
        link.connected(now: 0)
        link.failed("the hub hub-01 does not trust this node", now: 0)
        _ = link.shouldConnect(now: 10 * second)
        link.connected(now: 10 * second)
        #expect(link.lastError == "the hub hub-01 does not trust this node") // connected is not accepted
        link.heard(now: 10 * second + 1)
        #expect(link.lastError == nil)
    }

    /// A hub that died stops counting as answering within seconds, long
    /// before the stream's own 20 s timeout; probes keep a quiet live one answering.
    @Test func aSilentHubStopsAnsweringAndIsProbed() {
        var link = HubLink()
        _ = link.shouldConnect(now: 0)
        link.connected(now: 0)
        #expect(link.isAnswering(now: 0))
        let step8 = link.shouldProbe(now: 2 * second - 1)
        #expect(!step8)
        let step9 = link.shouldProbe(now: 2 * second)
        #expect(step9)
        let step10 = link.shouldProbe(now: 3 * second)
        #expect(!step10) // one probe per quiet stretch
        #expect(link.isAnswering(now: 5 * second - 1))
        #expect(!link.isAnswering(now: 5 * second))
        let step11 = link.shouldProbe(now: 5 * second)
        #expect(step11)
        link.heard(now: 5 * second + 10) // the PONG
        #expect(link.isAnswering(now: 6 * second))
        let step12 = link.shouldProbe(now: 6 * second)
        #expect(!step12)
    }

    @Test func aQuietCloseReconnectsAtOnceWithoutAnError() {
        var link = HubLink()
        _ = link.shouldConnect(now: 0)
        link.connected(now: 0)
        link.closed()
        let idle = link.state == .idle && link.lastError == nil && !link.isAnswering(now: 0)
        #expect(idle)
        let step13 = link.shouldConnect(now: 1)
        #expect(step13)
    }
}
