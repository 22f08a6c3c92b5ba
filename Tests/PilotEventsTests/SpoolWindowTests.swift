import PilotEvents
import Testing

@Suite struct SpoolWindowTests {
    @Test func sendsInOrderWithinTheBoundBeyondWhatIsAcknowledged() {
        var window = SpoolWindow(acknowledged: 0, maxInFlight: 100)
        #expect(window.hasRoom(lastSequence: 250, acknowledged: 0))
        window.sent(upTo: 100)
        #expect(!window.hasRoom(lastSequence: 250, acknowledged: 0)) // 100 in flight: wait
        #expect(window.hasRoom(lastSequence: 250, acknowledged: 1))
        window.sent(upTo: 150)
        #expect(!window.hasRoom(lastSequence: 250, acknowledged: 50))
        window.sent(upTo: 250)
        #expect(!window.hasRoom(lastSequence: 250, acknowledged: 250)) // all sent
        #expect(window.resent == 0)
    }

    /// After a reconnect everything the hub had not acknowledged goes
    /// again, from the oldest, and only that counts as resent.
    @Test func aReconnectResendsFromTheOldestUnacknowledgedAndCountsIt() {
        var window = SpoolWindow(acknowledged: 10)
        window.sent(upTo: 60)
        window.reconnected(acknowledged: 40)
        #expect(window.sentUpTo == 40)
        #expect(window.hasRoom(lastSequence: 80, acknowledged: 40))
        window.sent(upTo: 80) // 41...60 again, 61...80 new
        #expect(window.resent == 20)
        window.reconnected(acknowledged: 80)
        window.sent(upTo: 90)
        #expect(window.resent == 20)
    }

    /// A spool left from an earlier run starts after what that run had acknowledged; nothing of it counts as resent.
    @Test func aRestartBeginsAfterTheAcknowledgedAndCountsFromThisRun() {
        var window = SpoolWindow(acknowledged: 5_000)
        #expect(window.sentUpTo == 5_000 && window.hasRoom(lastSequence: 5_001, acknowledged: 5_000))
        window.sent(upTo: 5_001)
        #expect(window.resent == 0)
        window.sent(upTo: 4_000) // never backwards
        #expect(window.sentUpTo == 5_001)
        #expect(!window.hasRoom(lastSequence: 5_001, acknowledged: 9_999)) // an ack beyond what was sent does not underflow
    }
}
