public import PilotCore
public import PilotSQLite

/// A publishing node's spool for one hub (`STATE/spool-HUB.db`): every message it publishes
/// with delivery on is numbered and committed here before the publisher is
/// told it was taken, and stays until the hub acknowledges it. Bounded:
/// when full it refuses new messages with a clear error rather than drop
/// old ones. Confined to one thread (the node's event loop).
public final class EventSpool {
    public struct Limits: Sendable, Equatable {
        public var maxMessages = 1_000_000
        public var maxBytes = 256 << 20
        public init() {}
    }

    public struct Item: Equatable, Sendable {
        public var sequence: UInt64
        public var topic: Topic
        public var payload: String
    }

    let database: SQLiteConnection
    public let limits: Limits
    /// Names this spool: the hub tells publishers apart by key and epoch, so
    /// a node whose state was wiped starts a new sequence safely.
    public let epoch: String
    public private(set) var count = 0
    public private(set) var bytes = 0
    /// Every sequence up to this one was acknowledged by the hub.
    public private(set) var acknowledged: UInt64 = 0
    public private(set) var lastSequence: UInt64 = 0
    private let insert: SQLiteStatement
    private let readAfter: SQLiteStatement
    private let remove: SQLiteStatement

    public init(path: String, limits: Limits = Limits()) throws(SQLiteError) {
        database = try SQLiteConnection(path: path)
        self.limits = limits
        try database.execute("""
            CREATE TABLE IF NOT EXISTS spool(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """)
        if let saved = try database.prepare("SELECT value FROM meta WHERE key = 'epoch'").query().first?[0].text {
            epoch = saved
        } else {
            epoch = String(UInt64.random(in: 1...UInt64.max), radix: 16)
            try database.prepare("INSERT INTO meta(key, value) VALUES('epoch', ?)").run(.text(epoch))
        }
        insert = try database.prepare("INSERT INTO spool(seq, topic, payload) VALUES(?, ?, ?)")
        readAfter = try database.prepare("SELECT seq, topic, payload FROM spool WHERE seq > ? ORDER BY seq LIMIT ?")
        remove = try database.prepare("DELETE FROM spool WHERE seq <= ?")
        let summary = try database.prepare("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM spool").query()[0]
        count = Int(summary[0].integer ?? 0)
        bytes = Int(summary[1].integer ?? 0)
        let savedLast = UInt64(try database.prepare("SELECT value FROM meta WHERE key = 'last_seq'").query().first?[0].text.flatMap { Int64($0) } ?? 0)
        lastSequence = max(UInt64(summary[3].integer ?? 0), savedLast)
        acknowledged = count == 0 ? lastSequence : UInt64(summary[2].integer ?? 1) - 1
    }

    /// Numbers and stores messages of one topic in one transaction; all or
    /// none. Returns their sequence numbers.
    public func append(topic: Topic, payloads: [String]) throws(SpoolError) -> ClosedRange<UInt64>? {
        try append(payloads.map { (topic, $0) })
    }

    /// Numbers and stores messages in one transaction; all or none.
    public func append(_ messages: [(topic: Topic, payload: String)]) throws(SpoolError) -> ClosedRange<UInt64>? {
        guard !messages.isEmpty else { return nil }
        let size = messages.reduce(0) { $0 + $1.payload.utf8.count }
        guard count + messages.count <= limits.maxMessages, bytes + size <= limits.maxBytes else {
            throw .full(count: count, bytes: bytes)
        }
        let first = lastSequence + 1
        do {
            try database.transaction {
                var seq = first
                for message in messages {
                    try insert.run(.integer(Int64(seq)), .text(message.topic.description), .text(message.payload))
                    seq += 1
                }
                try database.execute("INSERT INTO meta(key, value) VALUES('last_seq', '\(seq - 1)') ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            }
        } catch {
            throw .storage("\(error)")
        }
        lastSequence = first + UInt64(messages.count) - 1
        count += messages.count
        bytes += size
        return first...lastSequence
    }

    /// Up to `limit` spooled messages after `sequence`, oldest first.
    public func pending(after sequence: UInt64, limit: Int) throws(SQLiteError) -> [Item] {
        var topics = TopicCache()
        return try readAfter.query(.integer(Int64(min(sequence, UInt64(Int64.max)))), .integer(Int64(limit))).compactMap { row in
            guard let seq = row[0].integer, let text = row[1].text, let topic = try? topics.topic(ArraySlice(text.utf8)), let payload = row[2].text else {
                return nil
            }
            return Item(sequence: UInt64(seq), topic: topic, payload: payload)
        }
    }

    /// Up to `limit` spooled messages after `sequence` as `PUB` lines
    /// packed into stream messages of about `maxBytes` (the topics were
    /// checked on the way in), with the last sequence included.
    public func pendingFrames(after sequence: UInt64, limit: Int, maxBytes: Int = 60_000) throws(SQLiteError) -> (frames: [[UInt8]], last: UInt64, count: Int) {
        var frames: [[UInt8]] = []
        var frame: [UInt8] = []
        var last = sequence
        var count = 0
        for row in try readAfter.query(.integer(Int64(min(sequence, UInt64(Int64.max)))), .integer(Int64(limit))) {
            guard let seq = row[0].integer, let topic = row[1].text, let payload = row[2].text else { continue }
            if !frame.isEmpty, frame.count + topic.utf8.count + payload.utf8.count + 32 > maxBytes {
                frames.append(frame)
                frame = []
            }
            EventRequest.appendPublish(sequence: UInt64(seq), topic: topic, payload: payload, to: &frame)
            frame.append(0x0A)
            last = UInt64(seq)
            count += 1
        }
        if !frame.isEmpty { frames.append(frame) }
        return (frames, last, count)
    }

    /// The hub has stored everything up to `sequence`: forget it.
    public func acknowledge(upTo sequence: UInt64) throws(SQLiteError) {
        let upTo = min(sequence, lastSequence)
        guard upTo > acknowledged else { return }
        let gone = try database.prepare("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM spool WHERE seq <= ?").query(.integer(Int64(upTo)))[0]
        try remove.run(.integer(Int64(upTo)))
        count -= Int(gone[0].integer ?? 0)
        bytes -= Int(gone[1].integer ?? 0)
        acknowledged = upTo
    }
}

public enum SpoolError: Error, Equatable, CustomStringConvertible {
    case full(count: Int, bytes: Int)
    case storage(String)

    public var description: String {
        switch self {
        case let .full(count, bytes):
            "the spool is full (\(count) messages, \(bytes) bytes waiting for the hub); nothing was published — is the hub reachable? (pilot status)"
        case .storage(let reason): "cannot write the spool: \(reason)"
        }
    }
}
