public import PilotCore
public import PilotSQLite

/// Time series on one SQLite file (WAL): a row per series (metric and
/// labels), compressed chunks of up to `chunkSamples` samples (appended in
/// rowid order, so pages fill up, with an index by series and time), and a
/// head of the newest samples of each series: one small encoded block per
/// series per `append`, written in the same transaction as everything
/// else, so what `append` returned from is on disk and survives a kill -9. Writes are idempotent: the same (series,
/// timestamp) twice stores one sample, so at-least-once delivery cannot
/// double-count. Confined to one thread.
public final class SeriesStore {
    public struct Key: Hashable, Sendable, Comparable {
        public var metric: String
        /// Sorted by name.
        public var labels: [Label]
        public init(metric: String, labels: [(String, String)]) {
            self.metric = metric
            self.labels = labels.map { Label(name: $0.0, value: $0.1) }.sorted { $0.name < $1.name }
        }
        /// The series a sample is of: the same name and labels in any order
        /// are one series.
        public init(_ sample: Sample) { self.init(metric: sample.metric, labels: sample.labels) }
        var canonical: String { labels.map { "\($0.name)=\($0.value)" }.joined(separator: "\u{1F}") }
        public static func < (a: Key, b: Key) -> Bool { (a.metric, a.canonical) < (b.metric, b.canonical) }
    }

    public struct Label: Hashable, Sendable {
        public var name: String
        public var value: String
    }

    public struct Statistics: Sendable, Equatable {
        public var stored = 0
        public var duplicates = 0
        public var chunks = 0
        /// Samples older than raw retention: refused, so a late resend
        /// cannot be counted into the rollups twice.
        public var tooOld = 0
    }

    /// Set by retention: older samples are refused.
    public private(set) var oldestAccepted: Int64 = .min

    let database: SQLiteConnection
    /// The file's connection, for tables that must commit in the same
    /// transactions as the samples (the remote-write outbox).
    public var connection: SQLiteConnection { database }
    public let chunkSamples: Int
    public private(set) var statistics = Statistics()
    var ids: [Key: Int64] = [:]
    var keys: [Int64: Key] = [:]
    var head: [Int64: [Gorilla.Point]] = [:]
    var chunkedUpTo: [Int64: Int64] = [:]
    let insertHead: SQLiteStatement
    let insertSeries: SQLiteStatement
    let insertChunk: SQLiteStatement
    let overlapping: SQLiteStatement
    let overlappingSpans: SQLiteStatement
    let deleteHead: SQLiteStatement
    let deleteChunks: SQLiteStatement
    let upsertRollup: SQLiteStatement
    let expiring: SQLiteStatement
    let blocksOverlapping: SQLiteStatement
    let stagedRollups: SQLiteStatement
    let stagedBefore: SQLiteStatement
    let deleteStaged: SQLiteStatement
    let insertBlock: SQLiteStatement
    let firstChunkStart: SQLiteStatement
    let deleteChunk: SQLiteStatement
    /// Rollup resolutions in milliseconds: 5 minutes and 1 hour.
    public static let rollupResolutions: [Int64] = [300_000, 3_600_000]

    public init(path: String, chunkSamples: Int = 240) throws(SQLiteError) {
        database = try SQLiteConnection(path: path)
        self.chunkSamples = max(2, min(chunkSamples, Gorilla.maxSamples))
        try database.execute("""
            CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric TEXT NOT NULL, labels TEXT NOT NULL, UNIQUE(metric, labels));
            CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, series INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                                              count INTEGER NOT NULL, data BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks(series, start);
            CREATE INDEX IF NOT EXISTS chunks_by_end ON chunks(end);
            CREATE TABLE IF NOT EXISTS head(id INTEGER PRIMARY KEY, series INTEGER NOT NULL, data BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS head_by_series ON head(series);
            CREATE TABLE IF NOT EXISTS rollups(resolution INTEGER NOT NULL, series INTEGER NOT NULL, start INTEGER NOT NULL,
                                               min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,
                                               PRIMARY KEY(resolution, series, start)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS rollup_blocks(id INTEGER PRIMARY KEY, resolution INTEGER NOT NULL, series INTEGER NOT NULL,
                                                     start INTEGER NOT NULL, end INTEGER NOT NULL, data BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS rollup_blocks_by_series ON rollup_blocks(resolution, series, start);
            CREATE INDEX IF NOT EXISTS rollup_blocks_by_end ON rollup_blocks(end);
            """)
        insertHead = try database.prepare("INSERT INTO head(series, data) VALUES(?, ?)")
        insertSeries = try database.prepare("INSERT INTO series(metric, labels) VALUES(?, ?)")
        insertChunk = try database.prepare("INSERT INTO chunks(series, start, end, count, data) VALUES(?, ?, ?, ?, ?)")
        overlapping = try database.prepare("SELECT start, data FROM chunks WHERE series = ? AND end >= ? AND start <= ? ORDER BY start")
        overlappingSpans = try database.prepare("SELECT start, end, data FROM chunks WHERE series = ? AND end >= ? AND start <= ? ORDER BY start")
        deleteHead = try database.prepare("DELETE FROM head WHERE series = ?")
        deleteChunks = try database.prepare("DELETE FROM chunks WHERE series = ? AND end >= ? AND start <= ?")
        expiring = try database.prepare("SELECT id, series, data FROM chunks WHERE end < ? ORDER BY end LIMIT ?")
        deleteChunk = try database.prepare("DELETE FROM chunks WHERE id = ?")
        blocksOverlapping = try database.prepare(
            "SELECT data FROM rollup_blocks WHERE resolution = ? AND series = ? AND end >= ? AND start <= ? ORDER BY start")
        stagedRollups = try database.prepare(
            "SELECT start, min, max, sum, count FROM rollups WHERE resolution = ? AND series = ? AND start >= ? AND start <= ? ORDER BY start")
        stagedBefore = try database.prepare(
            "SELECT start, min, max, sum, count FROM rollups WHERE resolution = ? AND series = ? AND start <= ? ORDER BY start")
        deleteStaged = try database.prepare("DELETE FROM rollups WHERE resolution = ? AND series = ? AND start >= ? AND start <= ?")
        insertBlock = try database.prepare("INSERT INTO rollup_blocks(resolution, series, start, end, data) VALUES(?, ?, ?, ?, ?)")
        firstChunkStart = try database.prepare("SELECT MIN(start) FROM chunks WHERE series = ?")
        upsertRollup = try database.prepare("""
            INSERT INTO rollups(resolution, series, start, min, max, sum, count) VALUES(?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(resolution, series, start) DO UPDATE SET min = MIN(min, excluded.min), max = MAX(max, excluded.max),
                sum = sum + excluded.sum, count = count + excluded.count
            """)
        for row in try database.prepare("SELECT id, metric, labels FROM series").query() {
            guard let id = row[0].integer, let metric = row[1].text, let labels = row[2].text else { continue }
            let pairs = labels.split(separator: "\u{1F}").compactMap { pair -> (String, String)? in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }
            let key = Key(metric: metric, labels: pairs)
            ids[key] = id
            keys[id] = key
        }
        for row in try database.prepare("SELECT series, MAX(end) FROM chunks GROUP BY series").query() {
            if let id = row[0].integer, let end = row[1].integer { chunkedUpTo[id] = end }
        }
        for row in try database.prepare("SELECT series, data FROM head ORDER BY id").query() {
            guard let id = row[0].integer, let data = row[1].blob, let block = try? Gorilla.decode(data) else { continue }
            head[id, default: []] += block
        }
        for (id, samples) in head {
            let sorted = samples.sorted { $0.timestamp < $1.timestamp }
            var unique: [Gorilla.Point] = []
            for sample in sorted where unique.last?.timestamp != sample.timestamp { unique.append(sample) }
            head[id] = unique
        }
        statistics.chunks = Int(try database.prepare("SELECT COUNT(*) FROM chunks").query().first?[0].integer ?? 0)
    }

    public var seriesCount: Int { ids.count }

    /// Stores samples in one transaction; returns how many were new.
    /// `alsoWithNew`, if given, runs inside the same transaction with the
    /// samples that were new (not duplicates, not too old), so what it
    /// writes commits or rolls back with them.
    @discardableResult
    public func append(_ samples: [Sample], alsoWithNew: (([Sample]) throws -> Void)? = nil) throws -> Int {
        var added = 0
        var fresh: [Sample] = []
        var blocks: [Int64: [Gorilla.Point]] = [:]
        try database.transaction {
            for sample in samples {
                guard sample.timestamp >= oldestAccepted else {
                    statistics.tooOld += 1
                    continue
                }
                let id = try seriesID(Key(sample))
                let new = Gorilla.Point(sample.timestamp, sample.value)
                if let upTo = chunkedUpTo[id], sample.timestamp <= upTo, try chunked(id, contains: sample.timestamp) {
                    statistics.duplicates += 1
                    continue
                }
                var buffer = head.removeValue(forKey: id) ?? []
                let index = Self.insertionIndex(buffer, sample.timestamp)
                if index < buffer.count, buffer[index].timestamp == sample.timestamp {
                    head[id] = buffer
                    statistics.duplicates += 1
                    continue
                }
                buffer.insert(new, at: index)
                head[id] = buffer
                blocks[id, default: []].append(new)
                added += 1
                if alsoWithNew != nil { fresh.append(sample) }
            }
            if let alsoWithNew, !fresh.isEmpty { try alsoWithNew(fresh) }
            for (id, block) in blocks {
                if head[id]!.count >= chunkSamples {
                    try compact(id)
                } else {
                    try insertHead.run(.integer(id), .blob(try Gorilla.encode(block.sorted { $0.timestamp < $1.timestamp })))
                }
            }
        }
        statistics.stored += added
        return added
    }

    /// Where `timestamp` goes in a sorted buffer (binary search; the common
    /// case, a newer sample, is the end).
    static func insertionIndex(_ buffer: [Gorilla.Point], _ timestamp: Int64) -> Int {
        if let last = buffer.last, last.timestamp < timestamp { return buffer.count }
        var low = 0, high = buffer.count
        while low < high {
            let middle = (low + high) / 2
            if buffer[middle].timestamp < timestamp { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func seriesID(_ key: Key) throws -> Int64 {
        if let id = ids[key] { return id }
        try insertSeries.run(.text(key.metric), .text(key.canonical))
        let id = database.lastInsertRowID
        ids[key] = id
        keys[id] = key
        return id
    }

    private func chunked(_ id: Int64, contains timestamp: Int64) throws -> Bool {
        for row in try overlapping.query(.integer(id), .integer(timestamp), .integer(timestamp)) {
            guard let data = row[1].blob else { continue }
            if try Gorilla.decode(data).contains(where: { $0.timestamp == timestamp }) { return true }
        }
        return false
    }

    private func rollUp(_ id: Int64, _ samples: [Gorilla.Point]) throws {
        for resolution in Self.rollupResolutions {
            var buckets: [Rollup] = []
            for sample in samples where sample.value.isFinite {
                let start = sample.timestamp - ((sample.timestamp % resolution) + resolution) % resolution
                let one = Rollup(start: start, sample: sample.value)
                if buckets.last?.start == start { buckets[buckets.count - 1].absorb(one) } else { buckets.append(one) }
            }
            for bucket in buckets {
                try upsertRollup.run(.integer(resolution), .integer(id), .integer(bucket.start), .real(bucket.min), .real(bucket.max),
                                     .real(bucket.sum), .integer(Int64(bucket.count)))
            }
        }
    }

    /// Moves a series' head into chunks, merging with any chunk its time
    /// range overlaps (late samples), then empties the head.
    private func compact(_ id: Int64) throws {
        guard let buffered = head[id], buffered.count >= chunkSamples else { return }
        // Whole chunks only; the rest stays in the head for the next ones,
        // written again as the series' one head block.
        let whole = buffered.count - buffered.count % chunkSamples
        var samples = Array(buffered[..<whole])
        let remainder = Array(buffered[whole...])
        head[id] = remainder
        try deleteHead.run(.integer(id))
        if !remainder.isEmpty { try insertHead.run(.integer(id), .blob(try Gorilla.encode(remainder))) }
        let first = samples[0], last = samples[whole - 1]
        var replaced = 0
        for row in try overlapping.query(.integer(id), .integer(first.timestamp), .integer(last.timestamp)) {
            if let data = row[1].blob { samples += try Gorilla.decode(data) }
            replaced += 1
        }
        if replaced > 0 {
            samples.sort { $0.timestamp < $1.timestamp }
            var unique: [Gorilla.Point] = []
            for sample in samples where unique.last?.timestamp != sample.timestamp { unique.append(sample) }
            samples = unique
            try deleteChunks.run(.integer(id), .integer(first.timestamp), .integer(last.timestamp))
        }
        var start = 0
        while start < samples.count {
            let part = Array(samples[start..<min(samples.count, start + chunkSamples)])
            try insertChunk.run(.integer(id), .integer(part[0].timestamp), .integer(part.last!.timestamp), .integer(Int64(part.count)),
                                .blob(try Gorilla.encode(part)))
            start += chunkSamples
        }
        statistics.chunks += (samples.count + chunkSamples - 1) / chunkSamples - replaced
        chunkedUpTo[id] = max(chunkedUpTo[id] ?? .min, samples.last!.timestamp)
    }

    /// Moves a series' final rollup rows into compressed blocks once a full
    /// block of them is final: buckets that end before the oldest raw
    /// sample the series still has can receive nothing more.
    private func sealRollups(_ id: Int64) throws {
        let oldestChunk = try firstChunkStart.query(.integer(id)).first?[0].integer
        let boundary = min(oldestChunk ?? .max, head[id]?.first?.timestamp ?? .max)
        for resolution in Self.rollupResolutions {
            let final = try stagedBefore.query(.integer(resolution), .integer(id), .integer(boundary &- resolution)).compactMap(Self.rollup)
            var start = 0
            while final.count - start >= Self.rollupBlockBuckets {
                let block = Array(final[start..<start + Self.rollupBlockBuckets])
                try insertBlock.run(.integer(resolution), .integer(id), .integer(block[0].start), .integer(block.last!.start),
                                    .blob(try RollupCodec.encode(block)))
                try deleteStaged.run(.integer(resolution), .integer(id), .integer(block[0].start), .integer(block.last!.start))
                start += Self.rollupBlockBuckets
            }
        }
    }

    /// Rollup rows not yet in blocks, and blocks (for measurements).
    public func rollupCounts() throws -> (rows: Int, blocks: Int) {
        let rows = try database.prepare("SELECT COUNT(*) FROM rollups").query().first?[0].integer ?? 0
        let blocks = try database.prepare("SELECT COUNT(*) FROM rollup_blocks").query().first?[0].integer ?? 0
        return (Int(rows), Int(blocks))
    }

    /// Retention, one bounded step. Raw data older than `rawAge` is rolled
    /// up (5-minute and 1-hour min/max/sum/count) and removed in the same
    /// transaction, so each sample is counted once; rollups older than
    /// `rollupAge` go. At most `limit` chunks, series heads and rollup rows
    /// per call, so no pass blocks for long. Returns the rows removed.
    ///
    /// Rollups are made only as raw data ages out: within raw retention the
    /// raw samples answer every query, and storing both would double the file.
    @discardableResult
    public func applyRetention(now: Int64, rawAge: Int64, rollupAge: Int64, limit: Int = 2_000) throws -> Int {
        var removed = 0
        let cutoff = now - rawAge
        oldestAccepted = cutoff
        try database.transaction {
            var expired: [Int64] = []
            var touched: Set<Int64> = []
            for row in try expiring.query(.integer(cutoff), .integer(Int64(limit))) {
                guard let chunk = row[0].integer, let id = row[1].integer, let data = row[2].blob else { continue }
                try rollUp(id, try Gorilla.decode(data))
                expired.append(chunk)
                touched.insert(id)
            }
            for chunk in expired { try deleteChunk.run(.integer(chunk)) }
            removed += expired.count
            statistics.chunks -= expired.count
            // Heads of series that went quiet (a host retired) age out too.
            var heads = 0
            for (id, buffered) in head where heads < limit && (buffered.first?.timestamp ?? .max) < cutoff {
                let old = buffered.prefix { $0.timestamp < cutoff }
                let rest = Array(buffered[old.count...])
                try rollUp(id, Array(old))
                try deleteHead.run(.integer(id))
                if !rest.isEmpty { try insertHead.run(.integer(id), .blob(try Gorilla.encode(rest))) }
                head[id] = rest.isEmpty ? nil : rest
                heads += 1
                touched.insert(id)
            }
            removed += heads
            for id in touched { try sealRollups(id) }
            try database.prepare(
                "DELETE FROM rollups WHERE (resolution, series, start) IN (SELECT resolution, series, start FROM rollups WHERE start < ? LIMIT ?)"
            ).run(.integer(now - rollupAge), .integer(Int64(limit)))
            removed += database.changes
            try database.prepare("DELETE FROM rollup_blocks WHERE id IN (SELECT id FROM rollup_blocks WHERE end < ? ORDER BY end LIMIT ?)")
                .run(.integer(now - rollupAge), .integer(Int64(limit)))
            removed += database.changes
        }
        return removed
    }

    /// Refuses samples older than `cutoff` from now on (what retention
    /// would remove), before the first retention pass after a start.
    public func refuse(olderThan cutoff: Int64) { oldestAccepted = max(oldestAccepted, cutoff) }

}
