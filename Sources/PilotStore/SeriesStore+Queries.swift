public import PilotCore
internal import PilotSQLite

/// Reading the store: raw samples, rollups, downsampled ranges, the series
/// list and the storage figures the benchmark reports.
extension SeriesStore {
    /// The samples of a series between two times (inclusive), in order.
    public func samples(_ key: Key, from: Int64, to: Int64) throws -> [Gorilla.Point] {
        guard let id = ids[key] else { return [] }
        var result: [Gorilla.Point] = []
        for row in try overlapping.query(.integer(id), .integer(from), .integer(to)) {
            guard let data = row[1].blob else { continue }
            result += try Gorilla.decode(data).filter { $0.timestamp >= from && $0.timestamp <= to }
        }
        result += (head[id] ?? []).filter { $0.timestamp >= from && $0.timestamp <= to }
        result.sort { $0.timestamp < $1.timestamp }
        var unique: [Gorilla.Point] = []
        for sample in result where unique.last?.timestamp != sample.timestamp { unique.append(sample) }
        return unique
    }

    public struct Rollup: Equatable, Sendable {
        public var start: Int64, min: Double, max: Double, sum: Double, count: Int
        public init(start: Int64, min: Double, max: Double, sum: Double, count: Int) {
            (self.start, self.min, self.max, self.sum, self.count) = (start, min, max, sum, count)
        }
        /// The bucket of one sample.
        public init(start: Int64, sample value: Double) { self.init(start: start, min: value, max: value, sum: value, count: 1) }
        public var average: Double { count == 0 ? .nan : sum / Double(count) }
        /// Takes in another bucket's figures (the same bucket, or one within a larger step).
        public mutating func absorb(_ other: Rollup) {
            min = Swift.min(min, other.min)
            max = Swift.max(max, other.max)
            sum += other.sum
            count += other.count
        }
    }

    /// A series' rollups at a resolution (5 or 60 minutes) between two times:
    /// they cover the samples that aged out of raw retention. Final ones are
    /// in compressed blocks, the newest few still rows that can grow.
    public func rollups(_ key: Key, resolution: Int64, from: Int64, to: Int64) throws -> [Rollup] {
        guard let id = ids[key] else { return [] }
        var result: [Rollup] = []
        for row in try blocksOverlapping.query(.integer(resolution), .integer(id), .integer(from), .integer(to)) {
            guard let data = row[0].blob else { continue }
            result += try RollupCodec.decode(data).filter { $0.start >= from && $0.start <= to }
        }
        result += try stagedRollups.query(.integer(resolution), .integer(id), .integer(from), .integer(to)).compactMap(Self.rollup)
        result.sort { $0.start < $1.start }
        // A bucket sealed and then grown by a sample just inside retention is in both: one bucket.
        var merged: [Rollup] = []
        for rollup in result {
            if merged.last?.start == rollup.start { merged[merged.count - 1].absorb(rollup) } else { merged.append(rollup) }
        }
        return merged
    }

    static func rollup(_ row: [SQLiteValue]) -> Rollup? {
        guard let start = row[0].integer, let low = row[1].real, let high = row[2].real, let sum = row[3].real, let count = row[4].integer else { return nil }
        return Rollup(start: start, min: low, max: high, sum: sum, count: Int(count))
    }

    /// Rollups per compressed block: a day of 5-minute ones, 12 days of hourly.
    public static let rollupBlockBuckets = 288

    /// Points at `step` over a range that may reach past raw retention:
    /// rollups (1 h for steps of an hour or more, else 5 min) where the raw
    /// data aged out, raw samples for the rest. Steps under 5 minutes, and
    /// `last`, read raw samples only.
    public func downsampled(_ key: Key, from: Int64, to: Int64, step: Int64, _ aggregate: Downsample.Aggregate) throws -> [Gorilla.Point] {
        let raw = try samples(key, from: from, to: to)
        guard step >= 300_000, aggregate != .last, from < oldestAccepted else { return Downsample.aggregate(raw, from: from, step: step, aggregate) }
        let resolution: Int64 = step >= 3_600_000 ? 3_600_000 : 300_000
        var parts = try rollups(key, resolution: resolution, from: from, to: to)
        parts += raw.compactMap { $0.value.isFinite ? Rollup(start: $0.timestamp, sample: $0.value) : nil }
        parts.sort { $0.start < $1.start }
        return Downsample.aggregate(rollups: parts, from: from, step: step, aggregate)
    }

    /// `downsampled`'s steps with each step's min, average and max at once
    /// (the band a chart draws around the average), from the same samples
    /// and rollups, so the averages equal `downsampled(…, .avg)`'s.
    public func bands(_ key: Key, from: Int64, to: Int64, step: Int64) throws -> [Downsample.Band] {
        let raw = try samples(key, from: from, to: to)
        guard step >= 300_000, from < oldestAccepted else { return Downsample.bands(raw, from: from, step: step) }
        let resolution: Int64 = step >= 3_600_000 ? 3_600_000 : 300_000
        var parts = try rollups(key, resolution: resolution, from: from, to: to)
        parts += raw.compactMap { $0.value.isFinite ? Rollup(start: $0.timestamp, sample: $0.value) : nil }
        parts.sort { $0.start < $1.start }
        return Downsample.bands(rollups: parts, from: from, step: step)
    }

    /// Bytes of compressed chunks, and samples in them (for measurements).
    public func chunkFootprint() throws -> (bytes: Int, samples: Int) {
        let row = try database.prepare("SELECT COALESCE(SUM(LENGTH(data)), 0), COALESCE(SUM(count), 0) FROM chunks").query()[0]
        return (Int(row[0].integer ?? 0), Int(row[1].integer ?? 0))
    }

    /// Bytes of pages a table uses (SQLite's dbstat), nil where unavailable.
    public func pageBytes(of table: String) -> Int? {
        guard let row = try? database.prepare("SELECT SUM(pgsize) FROM dbstat WHERE name = ?").query(.text(table)).first else { return nil }
        return row[0].integer.map(Int.init)
    }

    /// Folds the WAL into the database file (for measurements and backups).
    public func checkpoint() throws {
        try database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Every series, or those of one metric.
    public func series(metric: String? = nil) -> [Key] {
        ids.keys.filter { metric == nil || $0.metric == metric }.sorted()
    }
}
