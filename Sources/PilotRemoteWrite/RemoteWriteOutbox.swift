public import PilotSQLite

/// The remote-write backlog: serialised WriteRequests in a table of the
/// store's own file, written in the same transaction as the samples they
/// carry (so what the store acknowledged to the hub is also queued for the
/// remote end), removed once the remote end accepted them. Bounded in
/// bytes: when full, the oldest rows go and are counted, so a remote end
/// that is down for days cannot fill the disk. Confined to the store's thread.
public final class RemoteWriteOutbox {
    public struct Batch: Sendable, Equatable {
        /// Rows `first...last` joined: one WriteRequest.
        public var first: Int64, last: Int64
        public var samples: Int
        public var body: [UInt8]
    }

    public struct Statistics: Sendable, Equatable {
        public var queuedSamples = 0
        public var queuedBytes = 0
        /// Samples dropped because the backlog was full.
        public var droppedSamples = 0
    }

    public let maxBytes: Int
    public private(set) var statistics = Statistics()
    private let insert: SQLiteStatement
    private let oldest: SQLiteStatement
    private let range: SQLiteStatement
    private let deleteThrough: SQLiteStatement
    private let sizeThrough: SQLiteStatement

    public init(connection: SQLiteConnection, maxBytes: Int) throws(SQLiteError) {
        self.maxBytes = max(1, maxBytes)
        try connection.execute("CREATE TABLE IF NOT EXISTS remote_write(id INTEGER PRIMARY KEY, samples INTEGER NOT NULL, data BLOB NOT NULL)")
        insert = try connection.prepare("INSERT INTO remote_write(samples, data) VALUES(?, ?)")
        oldest = try connection.prepare("SELECT id, samples, length(data) FROM remote_write ORDER BY id LIMIT ?")
        range = try connection.prepare("SELECT id, samples, data FROM remote_write ORDER BY id LIMIT ?")
        deleteThrough = try connection.prepare("DELETE FROM remote_write WHERE id <= ?")
        sizeThrough = try connection.prepare("SELECT COALESCE(SUM(samples), 0), COALESCE(SUM(length(data)), 0) FROM remote_write WHERE id <= ?")
        if let row = try connection.prepare("SELECT COALESCE(SUM(samples), 0), COALESCE(SUM(length(data)), 0) FROM remote_write").query().first {
            statistics.queuedSamples = Int(row[0].integer ?? 0)
            statistics.queuedBytes = Int(row[1].integer ?? 0)
        }
    }

    public var isEmpty: Bool { statistics.queuedSamples == 0 && statistics.queuedBytes == 0 }

    /// Queues one request of `samples` samples; call inside the store's
    /// transaction. Drops the oldest rows if the backlog would exceed its
    /// bound, and returns how many samples that dropped.
    @discardableResult
    public func enqueue(_ request: [UInt8], samples: Int) throws(SQLiteError) -> Int {
        try insert.run(.integer(Int64(samples)), .blob(request))
        statistics.queuedSamples += samples
        statistics.queuedBytes += request.count
        var dropped = 0
        while statistics.queuedBytes > maxBytes {
            var through: Int64?
            var bytes = 0, count = 0
            for row in try oldest.query(.integer(64)) {
                guard let id = row[0].integer else { continue }
                through = id
                count += Int(row[1].integer ?? 0)
                bytes += Int(row[2].integer ?? 0)
                if statistics.queuedBytes - bytes <= maxBytes { break }
            }
            guard let through else { break }
            try deleteThrough.run(.integer(through))
            statistics.queuedBytes -= bytes
            statistics.queuedSamples -= count
            dropped += count
        }
        statistics.droppedSamples += dropped
        return dropped
    }

    /// The oldest rows joined into one request of at most `maxSamples`
    /// samples (at least one row, however large), or nil when empty.
    public func peek(maxSamples: Int) throws(SQLiteError) -> Batch? {
        var batch: Batch?
        for row in try range.query(.integer(Int64(max(1, maxSamples)))) {
            guard let id = row[0].integer, let data = row[2].blob else { continue }
            let samples = Int(row[1].integer ?? 0)
            if var current = batch {
                guard current.samples + samples <= maxSamples else { break }
                current.last = id
                current.samples += samples
                current.body += data
                batch = current
            } else {
                batch = Batch(first: id, last: id, samples: samples, body: data)
            }
        }
        return batch
    }

    /// Removes a batch the remote end accepted (or refused for good); rows
    /// the bound dropped meanwhile are already gone and not counted twice.
    public func remove(_ batch: Batch) throws(SQLiteError) {
        let row = try sizeThrough.query(.integer(batch.last)).first
        try deleteThrough.run(.integer(batch.last))
        statistics.queuedSamples = max(0, statistics.queuedSamples - Int(row?[0].integer ?? 0))
        statistics.queuedBytes = max(0, statistics.queuedBytes - Int(row?[1].integer ?? 0))
    }
}
