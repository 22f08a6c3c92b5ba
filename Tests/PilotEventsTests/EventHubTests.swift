#if canImport(Glibc)
import Glibc
#endif
import PilotCore
import PilotEvents
import Testing

/// A hub over a log in a temporary directory, with helpers to speak lines.
final class HubHarness {
    let directory: String
    var log: EventLog
    var hub: EventHub<String>
    var now: Int64 = 1_764_100_000

    init(options: EventHub<String>.Options = .init(), retention: EventLog.Retention = .init()) throws {
        directory = try TemporaryDirectory.make()
        log = try EventLog(path: directory + "/events.db", retention: retention)
        hub = try EventHub(log: log, options: options)
    }

    deinit { TemporaryDirectory.remove(directory) }

    /// The hub as after a kill -9: a new process opens the same file.
    func restart(options: EventHub<String>.Options = .init(), retention: EventLog.Retention = .init()) throws {
        log = try EventLog(path: directory + "/events.db", retention: retention)
        hub = try EventHub(log: log, options: options)
    }

    func send(_ connection: String, _ lines: String...) {
        hub.receive(Array(lines.map { $0 + "\n" }.joined().utf8), from: connection)
    }

    func commit() throws { try hub.commit(now: now) }

    /// Everything the hub has for a connection now, as parsed replies.
    func drain(_ connection: String) throws -> [EventReply] {
        var replies: [EventReply] = []
        while let frame = hub.nextFrame(for: connection) {
            replies += try EventLines.split(frame).map { try EventReply.parse($0) }
        }
        return replies
    }

    func messages(_ connection: String) throws -> [EventMessage] {
        try drain(connection).compactMap { if case .message(_, let message) = $0 { message } else { nil } }
    }
}

enum TemporaryDirectory {
    struct Failure: Error { let reason: String }

    static func make() throws -> String {
        var template = Array("/tmp/pilot-events-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Failure(reason: "mkdtemp failed") }
        return String(cString: made)
    }

    static func remove(_ path: String) {
        for name in ["events.db", "events.db-wal", "events.db-shm", "spool.db", "spool.db-wal", "spool.db-shm"] { unlink(path + "/" + name) }
        rmdir(path)
    }
}

func pub(_ seq: Int, _ topic: String, _ n: Int? = nil) -> String { #"PUB \#(seq) \#(topic) {"n":\#(n ?? seq)}"# }

@Suite struct EventHubTests {
    @Test func filtersRouteAsDesignedEndToEnd() throws {
        let h = try HubHarness()
        for (connection, filter) in [("all", "metrics/*"), ("web", "metrics/*/web-01"), ("exact", "metrics/cpu/web-01")] {
            h.hub.open(connection, peer: connection.uppercased())
            h.send(connection, "SUB \(filter)")
            #expect(try h.drain(connection) == [.subscribed(try TopicFilter(filter)), .position(0)])
        }
        h.hub.open("pub", peer: "P")
        h.send("pub", pub(1, "metrics/cpu/web-01"), pub(2, "metrics/memory/web-01"), pub(3, "metrics/cpu/db-01"), pub(4, "health/http/web-01"))
        try h.commit()
        #expect(try h.messages("all").map(\.sequence) == [1, 2, 3])
        #expect(try h.messages("web").map(\.sequence) == [1, 2])
        #expect(try h.messages("exact").map(\.sequence) == [1])
        #expect(try h.drain("pub") == [.published(upTo: 4)])
    }

    @Test func aMessageReachesASubscriberOnceHoweverManyFiltersMatch() throws {
        let h = try HubHarness()
        h.hub.open("s", peer: "S")
        h.send("s", "SUB metrics/*", "SUB */cpu/*", "SUB metrics/*")
        _ = try h.drain("s")
        h.hub.open("p", peer: "P")
        h.send("p", pub(1, "metrics/cpu/web-01"))
        try h.commit()
        #expect(try h.messages("s").count == 1)
        h.send("s", "UNSUB metrics/*", "UNSUB */cpu/*")
        h.send("p", pub(2, "metrics/cpu/web-01"))
        try h.commit()
        #expect(try h.messages("s").isEmpty)
    }

    /// A commit visits the connections that published and those that
    /// subscribe, not every session: each publisher gets its own
    /// acknowledgement, one that closed gets none, and a subscriber that
    /// dropped its filters and took one again is served again.
    @Test func aCommitAcknowledgesEachPublisherAndServesCurrentSubscribersOnly() throws {
        let h = try HubHarness()
        for index in 0..<50 { h.hub.open("p\(index)", peer: "P\(index)") }
        h.hub.open("s", peer: "S")
        h.send("s", "SUB metrics/*", "UNSUB metrics/*", "SUB metrics/cpu/*")
        _ = try h.drain("s")
        for index in 0..<50 { h.send("p\(index)", pub(index + 1, "metrics/cpu/h\(index)")) }
        h.hub.close("p7")
        #expect(h.hub.needsCommit)
        try h.commit()
        #expect(!h.hub.needsCommit)
        for index in 0..<50 where index != 7 { #expect(try h.drain("p\(index)") == [.published(upTo: UInt64(index + 1))]) }
        #expect(try h.drain("p7").isEmpty)
        #expect(try h.messages("s").count == 50) // p7's publication was taken before it closed
        h.send("s", "UNSUB metrics/cpu/*")
        h.send("p1", "EPOCH 5", pub(1, "metrics/cpu/h1"))
        try h.commit()
        #expect(try h.messages("s").isEmpty)
        #expect(try h.drain("p1") == [.published(upTo: 1)])
        h.send("s", "SUB metrics/*")
        _ = try h.drain("s")
        h.send("p1", pub(2, "metrics/cpu/h1"))
        try h.commit()
        #expect(try h.messages("s").map(\.publisher) == ["P1/5"])
    }

    @Test func nothingIsAcknowledgedBeforeItIsCommittedAndResendsAreDuplicates() throws {
        let h = try HubHarness()
        h.hub.open("p", peer: "P")
        h.send("p", "EPOCH 1a", pub(1, "t/a"), pub(2, "t/a"))
        #expect(try h.drain("p").isEmpty) // not stored yet: no PUBACK
        #expect(h.hub.needsCommit)
        try h.commit()
        #expect(try h.drain("p") == [.published(upTo: 2)])
        // kill -9 and restart: the watermark comes back from the file.
        try h.restart()
        h.hub.open("p2", peer: "P")
        h.send("p2", "EPOCH 1a", pub(2, "t/a"), pub(3, "t/a"))
        try h.commit()
        #expect(try h.drain("p2") == [.published(upTo: 3)])
        #expect(h.hub.statistics.duplicates == 1)
        #expect(h.log.count == 3)
        // Another spool epoch of the same key is another publisher.
        h.send("p2", "EPOCH 2b", pub(1, "t/a"))
        try h.commit()
        #expect(h.log.count == 4)
    }

    @Test func aSlowPlainSubscriberIsBoundedAndToldWhileOthersGetEverything() throws {
        var options = EventHub<String>.Options()
        options.queuePerSubscriber = 100
        let h = try HubHarness(options: options)
        for name in ["slow", "fast"] {
            h.hub.open(name, peer: name)
            h.send(name, "SUB metrics/*")
            _ = try h.drain(name)
        }
        h.hub.open("p", peer: "P")
        var fast: [UInt64] = []
        for batch in 0..<20 {
            for i in 1...100 { h.send("p", pub(batch * 100 + i, "metrics/cpu/web-01")) }
            try h.commit()
            fast += try h.messages("fast").map(\.sequence)
        }
        #expect(fast == (1...2_000).map { UInt64($0) })
        let slow = try h.drain("slow")
        #expect(slow.first == .dropped(1_900))
        #expect(slow.dropFirst().compactMap { if case .message(_, let m) = $0 { m.sequence } else { nil } } == (1_901...2_000).map { UInt64($0) })
        #expect(h.hub.statistics.droppedSlow == 1_900)
    }

    /// A plain subscriber whose connection was lost (stopped until the
    /// tunnel gave up on it) comes back, says where it was, and is told and
    /// counted what it missed that its filters match: no silent gap.
    @Test func aPlainSubscriberBackAfterALostConnectionIsToldWhatItMissed() throws {
        let h = try HubHarness()
        h.hub.open("p", peer: "P")
        h.send("p", pub(1, "metrics/cpu/a"))
        try h.commit()
        h.hub.open("s", peer: "S")
        h.send("s", "SUB metrics/*")
        #expect(try h.drain("s") == [.subscribed(try TopicFilter("metrics/*")), .position(1)])
        for i in 2...11 { h.send("p", pub(i, i % 2 == 0 ? "metrics/cpu/a" : "health/x/a")) }
        try h.commit()
        let had = try h.drain("s").prefix(2).compactMap { if case .message(let id, _) = $0 { id } else { nil } }
        #expect(had == [2, 4])
        h.hub.close("s") // with 6, 8, 10 undelivered
        h.send("p", pub(12, "metrics/cpu/a"), pub(13, "health/x/a"))
        try h.commit()
        h.hub.open("back", peer: "S")
        h.send("back", "SUB metrics/*", "RESUME 4", "RESUME 0")
        #expect(try h.drain("back") == [.subscribed(try TopicFilter("metrics/*")), .position(13), .dropped(4)])
        #expect(h.hub.statistics.droppedSlow == 4)
        h.send("p", pub(14, "metrics/cpu/a"))
        try h.commit()
        #expect(try h.messages("back").map(\.sequence) == [14])
        // Durable subscribers resume from their cursor, not from RESUME.
        h.hub.open("d", peer: "D")
        h.send("d", "SUB metrics/* store", "RESUME 0")
        #expect(try h.drain("d") == [.subscribed(try TopicFilter("metrics/*"))])
        #expect(h.hub.statistics.droppedSlow == 4)
    }

    /// What RESUME costs the hub is bounded: only the newest messages are
    /// checked against the filters, older ones (and any that retention
    /// removed) count whatever their topic.
    @Test func resumeChecksABoundedRangeAndCountsTheRest() throws {
        var options = EventHub<String>.Options()
        options.resumeScanLimit = 4
        let h = try HubHarness(options: options)
        h.hub.open("p", peer: "P")
        for i in 1...10 { h.send("p", pub(i, i <= 6 ? "health/x/a" : i % 2 == 0 ? "metrics/cpu/a" : "health/x/a")) }
        try h.commit()
        h.hub.open("s", peer: "S")
        h.send("s", "RESUME 2", "SUB metrics/*")
        // 3...6 unchecked (4), of 7...10 the two that match.
        #expect(try h.drain("s").contains(.dropped(6)))
        h.hub.open("ahead", peer: "A")
        h.send("ahead", "SUB metrics/*", "RESUME 99") // a hub whose log is newer than the subscriber thinks
        #expect(try h.drain("ahead") == [.subscribed(try TopicFilter("metrics/*")), .position(10)])
    }

    @Test func theQueueIsBoundedInBytesToo() throws {
        var options = EventHub<String>.Options()
        options.queueBytesPerSubscriber = 2_000
        let h = try HubHarness(options: options)
        h.hub.open("s", peer: "S")
        h.send("s", "SUB t/*")
        _ = try h.drain("s")
        h.hub.open("p", peer: "P")
        for i in 1...1_000 { h.send("p", pub(i, "t/x")) }
        try h.commit()
        let replies = try h.drain("s")
        guard case .dropped(let dropped)? = replies.first else { Issue.record("no DROP first: \(replies.prefix(2))"); return }
        let kept = replies.dropFirst()
        #expect(dropped + kept.count == 1_000)
        let keptBytes = kept.map { $0.line.utf8.count }.reduce(0, +)
        #expect(keptBytes <= 2_000 && keptBytes + 29 > 2_000) // the newest that fit (lines here are 29 bytes)
    }

    @Test func aDurableSubscriberResumesAfterItsLastAckAcrossItsOwnAndTheHubsRestart() throws {
        var options = EventHub<String>.Options()
        options.queuePerSubscriber = 50
        options.replayBatch = 64
        let h = try HubHarness(options: options)
        h.hub.open("store", peer: "S")
        h.send("store", "SUB metrics/* store")
        #expect(try h.drain("store") == [.subscribed(try TopicFilter("metrics/*"))])
        h.hub.open("p", peer: "P")
        for i in 1...500 { h.send("p", pub(i, i % 2 == 0 ? "metrics/cpu/a" : "health/x/a")) }
        try h.commit()
        // It fell behind the queue: the rest comes from the log, complete and in order.
        let first = try h.drain("store")
        let ids = first.compactMap { if case .message(let id, _) = $0 { id } else { nil } }
        #expect(ids.count == 250)
        #expect(first.compactMap { if case .message(_, let m) = $0 { m.sequence } else { nil } } == stride(from: 2, through: 500, by: 2).map { UInt64($0) })
        h.send("store", "ACK \(ids[99])")
        try h.commit()
        h.hub.close("store")
        try h.restart(options: options)
        h.hub.open("p", peer: "P")
        for i in 501...510 { h.send("p", pub(i, "metrics/cpu/a")) } // published while it was away
        try h.commit()
        h.hub.open("store2", peer: "S")
        h.send("store2", "SUB metrics/* store")
        let resumed = try h.messages("store2").map(\.sequence)
        #expect(resumed == stride(from: 202, through: 500, by: 2).map { UInt64($0) } + (501...510).map { UInt64($0) })
        // Live again: new messages arrive through the queue.
        h.send("p", pub(511, "metrics/cpu/a"))
        try h.commit()
        #expect(try h.messages("store2").map(\.sequence) == [511])
    }

    @Test func retentionDropsAreCountedForDurableSubscribersAndReported() throws {
        var retention = EventLog.Retention()
        retention.maxAgeSeconds = 60
        let h = try HubHarness(retention: retention)
        h.hub.open("a", peer: "A")
        h.send("a", "SUB alerts/* alerter")
        _ = try h.drain("a")
        h.hub.close("a") // away
        h.hub.open("p", peer: "P")
        for i in 1...10 { h.send("p", pub(i, i <= 4 ? "alerts/disk/x" : "metrics/cpu/x")) }
        try h.commit()
        h.now += 61
        let report = h.hub.maintain(now: h.now)
        #expect(report == ["retention bound reached: 4 messages dropped before durable subscriber alerter read them"])
        #expect(h.hub.statistics.droppedRetention == 4)
        #expect(h.log.count == 0)
        h.send("p", pub(11, "alerts/disk/x"))
        try h.commit()
        h.hub.open("a2", peer: "A")
        h.send("a2", "SUB alerts/* alerter")
        #expect(try h.messages("a2").map(\.sequence) == [11])
    }

    @Test func theSizeBoundKeepsTheNewest() throws {
        var retention = EventLog.Retention()
        retention.maxBytes = 1_000
        let h = try HubHarness(retention: retention)
        h.hub.open("p", peer: "P")
        for i in 1...200 { h.send("p", pub(i, "t/x")) }
        try h.commit()
        while !h.hub.maintain(now: h.now).isEmpty || h.log.storedBytes > 1_000 {}
        #expect(h.log.storedBytes <= 1_000)
        let kept = try h.log.read(after: 0, limit: 1_000).map(\.message.sequence)
        #expect(kept.first ?? 0 > 80) // 1,692 payload bytes in all: the oldest ~90 go
        #expect(kept.last == 200)
        #expect(kept == Array(kept.first!...200))
    }

    @Test(arguments: [
        ("PUB 4 metrics//x {}", UInt64(4), "invalid topic 'metrics//x': it has an empty level"),
        ("PUB 5 m [1]", UInt64(5), "invalid payload: the payload must be a JSON object"),
        ("PUB x m {}", UInt64(0), "PUB needs a sequence number"),
        ("SUB metrics/cp*", UInt64(0), "invalid filter 'metrics/cp*': '*' must be a whole level, not part of 'cp*'"),
        ("SUB metrics/* bad/name", UInt64(0), "invalid durable name 'bad/name': use 1 to 64 letters, digits, '.', '_' or '-'"),
        ("DANCE", UInt64(0), "unknown request 'DANCE'"),
    ])
    func badRequestsGetAClearErrorBack(line: String, sequence: UInt64, reason: String) throws {
        let h = try HubHarness()
        h.hub.open("c", peer: "C")
        h.send("c", line)
        #expect(try h.drain("c") == [.error(sequence: sequence, reason: reason)])
        #expect(h.hub.statistics.refused == 1)
    }

    @Test func aRefusedPublicationIsAcknowledgedSoTheSpoolMovesOn() throws {
        let h = try HubHarness()
        h.hub.open("p", peer: "P")
        h.send("p", pub(1, "t/a"), "PUB 2 t/a [1]", pub(3, "t/a"))
        try h.commit()
        #expect(try h.drain("p") == [.error(sequence: 2, reason: "invalid payload: the payload must be a JSON object"), .published(upTo: 3)])
        #expect(h.log.count == 2)
    }

    @Test func subscriptionsPerConnectionAreBounded() throws {
        var options = EventHub<String>.Options()
        options.filtersPerConnection = 2
        let h = try HubHarness(options: options)
        h.hub.open("c", peer: "C")
        h.send("c", "SUB a", "SUB b", "SUB c")
        #expect(try h.drain("c").contains(.error(sequence: 0, reason: "too many subscriptions on one connection (at most 2)")))
    }

    @Test func fieldsSplitOnBytesSoACombiningMarkAfterASpaceCannotHideIt() throws {
        // Found by the event-lines fuzz target: " \u{5AD}" is one Character.
        let line = ArraySlice("ERR 3 \u{5AD}0i0e nvalid".utf8)
        #expect(try EventReply.parse(line) == .error(sequence: 3, reason: "\u{5AD}0i0e nvalid"))
        let reply = EventReply.error(sequence: 3, reason: "a\rb\u{0}c")
        #expect(reply.line == "ERR 3 abc")
        #expect(try EventReply.parse(ArraySlice(reply.line.utf8)) == .error(sequence: 3, reason: "abc"))
    }

    @Test func linesRoundTrip() throws {
        let requests: [EventRequest] = [
            .version(2), .epoch("ab12"), .subscribe(try TopicFilter("metrics/*"), durable: "store"), .subscribe(try TopicFilter("a"), durable: nil),
            .unsubscribe(try TopicFilter("alerts/*/db-01")), .publish(sequence: 7, topic: try Topic("metrics/cpu/web-01"), payload: #"{"cpu_pct":42.1}"#),
            .ack(99), .resume(after: 41), .ping,
        ]
        for request in requests { #expect(try EventRequest.parse(ArraySlice(request.line.utf8)) == request) }
        let replies: [EventReply] = [
            .version(2), .subscribed(try TopicFilter("metrics/*")), .unsubscribed(try TopicFilter("a")), .published(upTo: 9), .error(sequence: 3, reason: "no good"),
            .message(id: 12, EventMessage(topic: try Topic("alerts/disk_pct/db-01"), payload: #"{"severity":"critical"}"#, publisher: "KEY/1", sequence: 4)),
            .dropped(5), .position(17), .pong,
        ]
        for reply in replies { #expect(try EventReply.parse(ArraySlice(reply.line.utf8)) == reply) }
    }

    /// A peer over the tunnel says its protocol version first; one that
    /// does not (an older node) or says another is told why, once, and
    /// everything else it sends is ignored rather than misread.
    @Test func aVersionedPeerMustSayItsVersionFirst() throws {
        let h = try HubHarness()
        h.hub.open("new", peer: "N", versioned: true)
        h.send("new", "VERSION \(EventRequest.protocolVersion)", "SUB metrics/*")
        #expect(try h.drain("new") == [.version(EventRequest.protocolVersion), .subscribed(try TopicFilter("metrics/*")), .position(0)])
        h.hub.open("old", peer: "O", versioned: true)
        h.send("old", "EPOCH 1", pub(1, "metrics/cpu/a"), "SUB metrics/*")
        let replies = try h.drain("old")
        #expect(replies.count == 1)
        guard case .error(0, let reason)? = replies.first else { Issue.record("\(replies)"); return }
        #expect(reason.contains("event protocol \(EventRequest.protocolVersion)") && reason.contains("an older one"))
        try h.commit()
        #expect(h.hub.statistics.stored == 0)
        h.hub.open("newer", peer: "X", versioned: true)
        h.send("newer", "VERSION 9")
        guard case .error(0, let why)? = try h.drain("newer").first else { Issue.record("a newer version was taken"); return }
        #expect(why.contains("this node 9"))
    }

    /// The one reader of MSG lines: the fields a subscriber needs, found in
    /// the bytes; anything short of the six fields is not a message.
    @Test func aMessageLineIsReadInPlace() throws {
        let message = EventMessage(topic: try Topic("metrics/cpu/web-01"), payload: #"{"host":"web-01","note":"a b c"}"#, publisher: "KEY/1f", sequence: 42)
        let line = ArraySlice(EventReply.messageBytes(id: 1234, message))
        let fields = try #require(MessageLine(line))
        #expect(fields.id == 1234 && fields.sequence == 42)
        #expect(String(decoding: fields.publisher, as: UTF8.self) == "KEY/1f")
        #expect(String(decoding: fields.topic, as: UTF8.self) == "metrics/cpu/web-01")
        #expect(String(decoding: fields.payload, as: UTF8.self) == #"{"host":"web-01","note":"a b c"}"#)
        for bad in ["MSG 1 KEY 2 topic", "MSG x KEY 2 t {}", "MSG 1 KEY y t {}", "MSG  KEY 2 t {}", "PUBACK 3", "MSG 99999999999999999999 K 1 t {}"] {
            #expect(MessageLine(ArraySlice(bad.utf8)) == nil, "\(bad)")
        }
    }
}

@Suite struct EventSpoolTests {
    @Test func spooledMessagesSurviveARestartUntilAcknowledged() throws {
        let directory = try TemporaryDirectory.make()
        defer { TemporaryDirectory.remove(directory) }
        var spool = try EventSpool(path: directory + "/spool.db")
        let epoch = spool.epoch
        #expect(try spool.append(topic: Topic("t/a"), payloads: ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]) == 1...3)
        try spool.acknowledge(upTo: 1)
        spool = try EventSpool(path: directory + "/spool.db")
        #expect(spool.epoch == epoch)
        #expect(spool.count == 2)
        #expect(spool.acknowledged == 1)
        #expect(try spool.pending(after: spool.acknowledged, limit: 10).map(\.sequence) == [2, 3])
        try spool.acknowledge(upTo: 3)
        spool = try EventSpool(path: directory + "/spool.db")
        // Sequences never restart, even with the spool empty.
        #expect(try spool.append(topic: Topic("t/a"), payloads: ["{}"]) == 4...4)
    }

    @Test func aFullSpoolRefusesAndKeepsWhatItHas() throws {
        let directory = try TemporaryDirectory.make()
        defer { TemporaryDirectory.remove(directory) }
        var limits = EventSpool.Limits()
        limits.maxMessages = 3
        let spool = try EventSpool(path: directory + "/spool.db", limits: limits)
        _ = try spool.append(topic: Topic("t"), payloads: ["{}", "{}"])
        #expect(throws: SpoolError.full(count: 2, bytes: 4)) { try spool.append(topic: Topic("t"), payloads: ["{}", "{}"]) }
        #expect(spool.count == 2)
        #expect(spool.lastSequence == 2)
    }
}
