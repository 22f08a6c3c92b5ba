import NIOCore
import NIOEmbedded
import PilotNode
import Testing

@Suite struct CoalescedWriteTests {
    /// A fleet of a thousand approvals at once: one write, and nobody is
    /// answered before it.
    @Test func manyRequestsShareOneWriteAndCompleteOnlyAfterIt() throws {
        let loop = EmbeddedEventLoop()
        var written = 0
        let saver = CoalescedWrite(loop: loop, delay: .milliseconds(50)) { written += 1 }
        var done = 0
        for _ in 0..<1_000 { saver.request().assumeIsolated().whenSuccess { done += 1 } }
        loop.advanceTime(by: .milliseconds(49))
        #expect(written == 0 && done == 0)
        loop.advanceTime(by: .milliseconds(1))
        #expect(written == 1 && done == 1_000 && saver.writes == 1)
        try loop.syncShutdownGracefully()
    }

    /// A change after a write starts the next one: nothing is left unsaved.
    @Test func aRequestAfterAWriteGetsAWriteOfItsOwn() throws {
        let loop = EmbeddedEventLoop()
        var written = 0
        let saver = CoalescedWrite(loop: loop, delay: .milliseconds(50)) { written += 1 }
        let first = saver.request()
        loop.advanceTime(by: .milliseconds(50))
        let second = saver.request()
        #expect(first !== second)
        var secondDone = false
        second.assumeIsolated().whenSuccess { secondDone = true }
        #expect(written == 1 && !secondDone)
        loop.advanceTime(by: .milliseconds(50))
        #expect(written == 2 && secondDone)
        try loop.syncShutdownGracefully()
    }

    /// An acknowledgement after a change waits for its write, and one with
    /// no write due goes at once, in order behind the waiting ones.
    @Test func whatFollowsAPendingWriteWaitsForItInOrder() throws {
        let loop = EmbeddedEventLoop()
        var events: [String] = []
        let saver = CoalescedWrite(loop: loop, delay: .milliseconds(200)) { events.append("write") }
        saver.whenWritten { events.append("ack 1") }
        _ = saver.request()
        saver.whenWritten { events.append("ack 2") }
        saver.whenWritten { events.append("ack 3") }
        #expect(events == ["ack 1"])
        loop.advanceTime(by: .milliseconds(200))
        saver.whenWritten { events.append("ack 4") }
        #expect(events == ["ack 1", "write", "ack 2", "ack 3", "ack 4"])
        try loop.syncShutdownGracefully()
    }
}
