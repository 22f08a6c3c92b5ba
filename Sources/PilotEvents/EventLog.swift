public import PilotCore
public import PilotSQLite

/// The hub's durable log of publications (`STATE/events.db`, SQLite in WAL
/// mode): what it acknowledges is committed first, so a kill -9 loses
/// nothing acknowledged. It also keeps, per publisher, the highest
/// sequence stored (duplicates of a resend are recognised after a restart),
/// and the position and filters of each durable subscriber.
/// Confined to one thread (the hub's event loop).
public final class EventLog {
    public struct Retention: Sendable, Equatable {
        /// Payload bytes kept at most; the oldest go first.
        public var maxBytes: Int = 512 << 20
        /// Seconds a message is kept at most.
        public var maxAgeSeconds: Int64 = 7 * 86_400
        public init() {}
    }

    public struct Entry: Equatable, Sendable {
        public var id: UInt64
        public var message: EventMessage
        public var at: Int64
    }

    public struct Cursor: Equatable, Sendable {
        public var position: UInt64
        public var filters: [TopicFilter]
    }

    let database: SQLiteConnection
    public let retention: Retention
    public private(set) var lastID: UInt64 = 0
    public private(set) var firstID: UInt64 = 1
    public private(set) var storedBytes = 0
    public private(set) var count = 0
    private let insert: SQLiteStatement
    private let readAfter: SQLiteStatement
    private let countTopics: SQLiteStatement
    private let setWatermark: SQLiteStatement

    public init(path: String, retention: Retention = Retention()) throws(SQLiteError) {
        database = try SQLiteConnection(path: path)
        self.retention = retention
        try database.execute("""
            CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, publisher TEXT NOT NULL, seq INTEGER NOT NULL,
                                           topic TEXT NOT NULL, payload TEXT NOT NULL, at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS publishers(publisher TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS cursors(name TEXT PRIMARY KEY, position INTEGER NOT NULL, filters TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """)
        insert = try database.prepare("INSERT INTO log(id, publisher, seq, topic, payload, at) VALUES(?, ?, ?, ?, ?, ?)")
        readAfter = try database.prepare("SELECT id, publisher, seq, topic, payload, at FROM log WHERE id > ? ORDER BY id LIMIT ?")
        countTopics = try database.prepare("SELECT topic, COUNT(*) FROM log WHERE id > ? AND id <= ? GROUP BY topic")
        setWatermark = try database.prepare("INSERT INTO publishers(publisher, last_seq) VALUES(?, ?) ON CONFLICT(publisher) DO UPDATE SET last_seq = excluded.last_seq")
        let summary = try database.prepare("SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0), COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM log").query()[0]
        // Ids never go back, even when the log was pruned empty.
        let savedLast = try database.prepare("SELECT value FROM meta WHERE key = 'last_id'").query().first?[0].integer ?? 0
        lastID = UInt64(max(summary[1].integer ?? 0, savedLast))
        firstID = summary[2].integer == 0 ? lastID + 1 : UInt64(summary[0].integer ?? 1)
        count = Int(summary[2].integer ?? 0)
        storedBytes = Int(summary[3].integer ?? 0)
    }

    /// The highest sequence stored per publisher.
    public func watermarks() throws(SQLiteError) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for row in try database.prepare("SELECT publisher, last_seq FROM publishers").query() {
            if let publisher = row[0].text, let seq = row[1].integer { result[publisher] = UInt64(seq) }
        }
        return result
    }

    /// Stores messages in one transaction and returns their ids, with the
    /// publishers' new watermarks.
    public func append(_ messages: [EventMessage], at now: Int64) throws -> [UInt64] {
        guard !messages.isEmpty else { return [] }
        var ids: [UInt64] = []
        ids.reserveCapacity(messages.count)
        var highest: [String: UInt64] = [:]
        var next = lastID
        try database.transaction {
            for message in messages {
                next += 1
                try insert.run(.integer(Int64(next)), .text(message.publisher), .integer(Int64(bitPattern: message.sequence)),
                               .text(message.topic.description), .text(message.payload), .integer(now))
                ids.append(next)
                if message.sequence > 0 { highest[message.publisher] = max(highest[message.publisher] ?? 0, message.sequence) }
            }
            for (publisher, seq) in highest { try setWatermark.run(.text(publisher), .integer(Int64(bitPattern: seq))) }
            try database.execute("INSERT INTO meta(key, value) VALUES('last_id', \(next)) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        }
        lastID = next
        if count == 0 { firstID = ids[0] }
        count += messages.count
        storedBytes += messages.reduce(0) { $0 + $1.payload.utf8.count }
        return ids
    }

    /// Up to `limit` entries after `id`, oldest first.
    public func read(after id: UInt64, limit: Int) throws(SQLiteError) -> [Entry] {
        try readAfter.query(.integer(Int64(min(id, UInt64(Int64.max)))), .integer(Int64(limit))).compactMap { row in
            guard let id = row[0].integer, let publisher = row[1].text, let seq = row[2].integer, let topicText = row[3].text,
                  let topic = try? Topic(topicText), let payload = row[4].text, let at = row[5].integer else { return nil }
            return Entry(id: UInt64(id), message: EventMessage(topic: topic, payload: payload, publisher: publisher, sequence: UInt64(bitPattern: seq)), at: at)
        }
    }

    /// How many entries of each topic the log holds with ids after `id` and
    /// up to `upTo` (one pass over that range of the primary key).
    public func topicCounts(after id: UInt64, upTo: UInt64) throws(SQLiteError) -> [(topic: String, count: Int)] {
        guard upTo > id else { return [] }
        return try countTopics.query(.integer(Int64(min(id, UInt64(Int64.max)))), .integer(Int64(min(upTo, UInt64(Int64.max))))).compactMap { row in
            guard let topic = row[0].text, let count = row[1].integer else { return nil }
            return (topic, Int(count))
        }
    }

    // MARK: Durable subscribers

    public func cursors() throws(SQLiteError) -> [String: Cursor] {
        var result: [String: Cursor] = [:]
        for row in try database.prepare("SELECT name, position, filters FROM cursors").query() {
            guard let name = row[0].text, let position = row[1].integer, let filters = row[2].text else { continue }
            result[name] = Cursor(position: UInt64(position), filters: filters.split(separator: " ").compactMap { try? TopicFilter($0) })
        }
        return result
    }

    public func save(cursors: [String: Cursor]) throws {
        guard !cursors.isEmpty else { return }
        let statement = try database.prepare(
            "INSERT INTO cursors(name, position, filters) VALUES(?, ?, ?) ON CONFLICT(name) DO UPDATE SET position = excluded.position, filters = excluded.filters")
        try database.transaction {
            for (name, cursor) in cursors {
                try statement.run(.text(name), .integer(Int64(cursor.position)), .text(cursor.filters.map(\.description).joined(separator: " ")))
            }
        }
    }

    // MARK: Retention

    /// Removes at most `limit` of the oldest entries that are past the age
    /// or size bound, and returns them (id and topic), so the hub can count
    /// what durable subscribers lose. Called often, so no pass is long.
    public func prune(now: Int64, limit: Int = 5_000) throws -> [(id: UInt64, topic: Topic?)] {
        guard count > 0 else { return [] }
        let oldest = try database.prepare("SELECT id, topic, LENGTH(payload), at FROM log ORDER BY id LIMIT ?").query(.integer(Int64(limit)))
        var removed: [(id: UInt64, topic: Topic?)] = []
        var bytes = storedBytes
        for row in oldest {
            guard let id = row[0].integer, let size = row[2].integer, let at = row[3].integer else { break }
            let tooOld = now - at > retention.maxAgeSeconds
            guard tooOld || bytes > retention.maxBytes else { break }
            bytes -= Int(size)
            removed.append((UInt64(id), try? Topic(row[1].text ?? "")))
        }
        guard let last = removed.last else { return [] }
        try database.transaction { try database.prepare("DELETE FROM log WHERE id <= ?").run(.integer(Int64(last.id))) }
        storedBytes = bytes
        count -= removed.count
        firstID = last.id + 1
        return removed
    }
}
