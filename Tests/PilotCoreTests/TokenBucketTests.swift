import PilotCore
import Testing

@Suite struct TokenBucketTests {
    @Test func aBurstThenTheRateAndFullAgainWhenIdle() {
        var bucket = TokenBucket(burst: 3, perSecond: 2)
        var taken = 0
        for _ in 0..<5 where bucket.take(now: 0) { taken += 1 }
        #expect(taken == 3)
        #expect(!bucket.isFull(now: 1_000_000))
        let refilled = bucket.take(now: 500_000) // one token back after half a second
        let again = bucket.take(now: 500_000)
        #expect(refilled)
        #expect(!again)
        #expect(bucket.isFull(now: 2_000_000))
    }
}
