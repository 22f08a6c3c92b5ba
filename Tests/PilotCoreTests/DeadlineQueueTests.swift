import PilotCore
import Testing

@Suite struct DeadlineQueueTests {
    @Test func keysComeDueEarliestFirstAndOnce() {
        var queue = DeadlineQueue<String>()
        queue.schedule("c", at: 30)
        queue.schedule("a", at: 10)
        queue.schedule("b", at: 20)
        let v1 = queue.next()
        #expect(v1 == 10)
        let v2 = queue.takeDue(now: 5)
        #expect(v2.isEmpty)
        let v3 = queue.takeDue(now: 20)
        #expect(v3 == ["a", "b"])
        let v4 = queue.next()
        #expect(v4 == 30)
        let v5 = queue.takeDue(now: 100)
        #expect(v5 == ["c"])
        let v6 = queue.next()
        #expect(v6 == nil)
        #expect(queue.count == 0)
    }

    /// Scheduling again replaces the deadline, later or earlier; the
    /// earlier-only form keeps an earlier one.
    @Test func aNewDeadlineReplacesTheOld() {
        var queue = DeadlineQueue<Int>()
        queue.schedule(1, at: 10)
        queue.schedule(1, at: 50) // later: not taken at 10
        let v7 = queue.takeDue(now: 10)
        #expect(v7.isEmpty)
        let v8 = queue.next()
        #expect(v8 == 50)
        queue.schedule(1, at: 5) // earlier
        let v9 = queue.takeDue(now: 5)
        #expect(v9 == [1])
        let later = queue.takeDue(now: 100)
        #expect(later.isEmpty) // the replaced entries went with it
        queue.schedule(2, at: 40)
        queue.schedule(2, noLaterThan: 60)
        let v10 = queue.next()
        #expect(v10 == 40)
        queue.schedule(2, noLaterThan: 20)
        let v11 = queue.next()
        #expect(v11 == 20)
        queue.remove(2)
        let v12 = queue.next()
        #expect(v12 == nil)
    }

    /// Many reschedules of few keys: the heap is rebuilt, nothing is lost,
    /// and every key comes due at its last deadline.
    @Test func reschedulingManyTimesKeepsTheLastDeadlineOfEachKey() {
        var queue = DeadlineQueue<Int>()
        var expected: [Int: Int64] = [:]
        var random = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            let key = round % 50
            let at = Int64.random(in: 1...1_000_000, using: &random)
            queue.schedule(key, at: at)
            expected[key] = at
        }
        #expect(queue.count == 50)
        var taken: [Int] = []
        var now: Int64 = 0
        while let next = queue.next() {
            now = next
            for key in queue.takeDue(now: now) {
                #expect(expected[key] == now)
                taken.append(key)
            }
        }
        #expect(taken.sorted() == Array(0..<50))
    }
}
