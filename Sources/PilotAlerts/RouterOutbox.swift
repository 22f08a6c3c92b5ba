public import PilotCore
public import PilotSQLite

/// The router's file (`STATE/router.db`): the outbox of (notification,
/// receiver) rows waiting for delivery, the router's state, and counters.
/// An alert is acknowledged to the hub only after the state that holds it
/// is committed here; a notification leaves the outbox only once its
/// receiver took it (or it was given up, counted). So a restart or kill -9
/// resumes where it stopped, and at most the one notification in flight
/// is sent again, with the same id. Confined to the router's thread.
public final class RouterOutbox {
    public struct Entry: Sendable, Equatable {
        public var row: Int64
        public var notification: Notification
        /// Unix seconds.
        public var createdAt: Int64
        public var attempts: Int
        /// Parts already delivered (PagerDuty: one event per alert).
        public var progress: Int
        public var lastError: String?
    }

    public struct Counters: Sendable, Equatable {
        public var delivered = 0, retried = 0, failed = 0
        public var lastError: String?
        public init(delivered: Int = 0, retried: Int = 0, failed: Int = 0, lastError: String? = nil) {
            (self.delivered, self.retried, self.failed, self.lastError) = (delivered, retried, failed, lastError)
        }
    }

    let connection: SQLiteConnection
    private let insert, head, update, delete, depthQuery, bump, readMeta, writeMeta: SQLiteStatement
    private let putGroup, dropGroup, putForwarded, dropForwarded: SQLiteStatement
    public private(set) var counters: [String: Counters] = [:]
    private var depths: [String: Int] = [:]

    public init(path: String) throws(SQLiteError) {
        connection = try SQLiteConnection(path: path)
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, notification TEXT NOT NULL,
              created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, progress INTEGER NOT NULL DEFAULT 0, last_error TEXT);
            CREATE INDEX IF NOT EXISTS outbox_receiver ON outbox(receiver, id);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS counters(receiver TEXT PRIMARY KEY, delivered INTEGER NOT NULL DEFAULT 0,
              retried INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, last_error TEXT);
            CREATE TABLE IF NOT EXISTS router_groups(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS router_forwarded(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """)
        putGroup = try connection.prepare("INSERT INTO router_groups(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2")
        dropGroup = try connection.prepare("DELETE FROM router_groups WHERE key = ?")
        putForwarded = try connection.prepare("INSERT INTO router_forwarded(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2")
        dropForwarded = try connection.prepare("DELETE FROM router_forwarded WHERE key = ?")
        insert = try connection.prepare("INSERT INTO outbox(receiver, notification, created_at) VALUES(?, ?, ?)")
        head = try connection.prepare("SELECT id, notification, created_at, attempts, progress, last_error FROM outbox WHERE receiver = ? ORDER BY id LIMIT 1")
        update = try connection.prepare("UPDATE outbox SET attempts = ?, progress = ?, last_error = ? WHERE id = ?")
        delete = try connection.prepare("DELETE FROM outbox WHERE id = ?")
        depthQuery = try connection.prepare("SELECT receiver, COUNT(*) FROM outbox GROUP BY receiver")
        bump = try connection.prepare("""
            INSERT INTO counters(receiver, delivered, retried, failed, last_error) VALUES(?1, ?2, ?3, ?4, ?5)
            ON CONFLICT(receiver) DO UPDATE SET delivered = delivered + ?2, retried = retried + ?3, failed = failed + ?4,
              last_error = CASE WHEN ?2 > 0 AND ?5 IS NULL THEN NULL ELSE COALESCE(?5, last_error) END
            """)
        readMeta = try connection.prepare("SELECT value FROM meta WHERE key = ?")
        writeMeta = try connection.prepare("INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2")
        for row in try depthQuery.query() { if let name = row[0].text { depths[name] = Int(row[1].integer ?? 0) } }
        for row in try connection.prepare("SELECT receiver, delivered, retried, failed, last_error FROM counters").query() {
            guard let name = row[0].text else { continue }
            counters[name] = Counters(delivered: Int(row[1].integer ?? 0), retried: Int(row[2].integer ?? 0), failed: Int(row[3].integer ?? 0),
                                      lastError: row[4].text)
        }
    }

    public func depth(_ receiver: String) -> Int { depths[receiver] ?? 0 }
    public var totalDepth: Int { depths.values.reduce(0, +) }

    public func meta(_ key: String) throws(SQLiteError) -> String? { try readMeta.query(.text(key)).first?[0].text }

    /// One transaction: what changed in the router's state and the
    /// notifications it made.
    public func commit(_ changes: RouterCore.Changes?, notifications: [Notification], now: Int64) throws {
        try connection.transaction {
            if let changes {
                try writeMeta.run(.text("core"), .text(changes.meta.description))
                for row in changes.groups {
                    if let value = row.value { try putGroup.run(.text(row.key), .text(value.description)) } else { try dropGroup.run(.text(row.key)) }
                }
                for row in changes.forwarded {
                    if let value = row.value { try putForwarded.run(.text(row.key), .text(value.description)) } else { try dropForwarded.run(.text(row.key)) }
                }
            }
            for notification in notifications {
                try insert.run(.text(notification.receiver), .text(JSONValue.object(notification.record).description), .integer(now))
            }
        }
        for notification in notifications { depths[notification.receiver, default: 0] += 1 }
    }

    public func setMeta(_ key: String, _ value: String) throws(SQLiteError) { try writeMeta.run(.text(key), .text(value)) }

    /// The router's saved state, nil before the first commit.
    public func snapshot() throws -> RouterCore.Snapshot? {
        guard let meta = try meta("core") else { return nil }
        let limits = JSONValue.Limits(maxBytes: 64 << 20, maxDepth: 16)
        var snapshot = RouterCore.Snapshot(meta: try JSONValue.parse(meta, limits: limits))
        for row in try connection.prepare("SELECT key, value FROM router_groups").query() {
            if let key = row[0].text, let value = row[1].text { snapshot.groups[key] = try JSONValue.parse(value, limits: limits) }
        }
        for row in try connection.prepare("SELECT key, value FROM router_forwarded").query() {
            if let key = row[0].text, let value = row[1].text { snapshot.forwarded[key] = try JSONValue.parse(value, limits: limits) }
        }
        return snapshot
    }

    /// The oldest notification waiting for `receiver`. A row that no
    /// longer parses is removed and counted as failed, never retried forever.
    public func head(_ receiver: String) throws(SQLiteError) -> Entry? {
        while let row = try head.query(.text(receiver)).first {
            guard let id = row[0].integer else { return nil }
            do {
                let record = try JSONValue.parse(row[1].text ?? "", limits: .init(maxBytes: 64 << 20, maxDepth: 16))
                return Entry(row: id, notification: try Notification(record: record), createdAt: row[2].integer ?? 0,
                             attempts: Int(row[3].integer ?? 0), progress: Int(row[4].integer ?? 0), lastError: row[5].text)
            } catch {
                try finish(row: id, receiver: receiver, delivered: false, error: "outbox row \(id) is unreadable: \(error)")
            }
        }
        return nil
    }

    /// The receiver took it, or it was given up: out of the outbox, counted.
    public func finish(_ entry: Entry, delivered: Bool, error: String? = nil) throws(SQLiteError) {
        try finish(row: entry.row, receiver: entry.notification.receiver, delivered: delivered, error: error)
    }

    private func finish(row: Int64, receiver: String, delivered: Bool, error: String?) throws(SQLiteError) {
        try delete.run(.integer(row))
        if connection.changes > 0 { depths[receiver] = max(0, (depths[receiver] ?? 1) - 1) }
        try count(receiver, delivered: delivered ? 1 : 0, failed: delivered ? 0 : 1, error: error)
    }

    /// An attempt failed and will be retried; `progress` parts are done.
    public func retry(_ entry: Entry, progress: Int, error: String) throws(SQLiteError) {
        try update.run(.integer(Int64(entry.attempts + 1)), .integer(Int64(progress)), .text(error), .integer(entry.row))
        try count(entry.notification.receiver, retried: 1, error: error)
    }

    /// Parts of an entry delivered so far (kept if the process dies mid-way).
    public func progress(_ entry: Entry, _ progress: Int) throws(SQLiteError) {
        try update.run(.integer(Int64(entry.attempts)), .integer(Int64(progress)), entry.lastError.map { .text($0) } ?? .null, .integer(entry.row))
    }

    private func count(_ receiver: String, delivered: Int = 0, retried: Int = 0, failed: Int = 0, error: String?) throws(SQLiteError) {
        try bump.run(.text(receiver), .integer(Int64(delivered)), .integer(Int64(retried)), .integer(Int64(failed)), error.map { .text($0) } ?? .null)
        var entry = counters[receiver] ?? Counters()
        entry.delivered += delivered
        entry.retried += retried
        entry.failed += failed
        if let error { entry.lastError = error } else if delivered > 0 { entry.lastError = nil }
        counters[receiver] = entry
    }
}
