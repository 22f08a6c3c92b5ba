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
        guard step > 0, aggregate != .last else { return Downsample.aggregate(try samples(key, from: from, to: to), from: from, step: step, aggregate) }
        return try bands(key, from: from, to: to, step: step).map { band in
            let value: Double = switch aggregate {
            case .avg, .last: band.average
            case .min: band.min
            case .max: band.max
            case .count: Double(band.count)
            }
            return Gorilla.Point(band.start, value)
        }
    }

    /// Each step's min, average, max and count (the band a chart draws
    /// around the average, and `downsampled`'s answers), in one pass over
    /// the rollups where raw data aged out and the raw samples, decoded
    /// chunk by chunk without building the whole list (a month of one
    /// series is 86,400 samples at 30 s).
    public func bands(_ key: Key, from: Int64, to: Int64, step: Int64) throws -> [Downsample.Band] {
        precondition(step > 0)
        guard let id = ids[key] else { return [] }
        var folding = Downsample.Folding(from: from, step: step)
        guard step >= 300_000, from < oldestAccepted else {
            try forEachSample(id, from: from, to: to) { folding.add($0) }
            return folding.finish()
        }
        // Rollups and the raw samples in time order (a rollup before a
        // sample of the same time); non-finite samples do not count here,
        // as rollups hold none.
        let resolution: Int64 = step >= 3_600_000 ? 3_600_000 : 300_000
        let rollups = try self.rollups(key, resolution: resolution, from: from, to: to)
        var next = 0
        try forEachSample(id, from: from, to: to) { sample in
            while next < rollups.count, rollups[next].start <= sample.timestamp {
                folding.add(rollups[next])
                next += 1
            }
            if sample.value.isFinite { folding.add(Rollup(start: sample.timestamp, sample: sample.value)) }
        }
        for rollup in rollups[next...] { folding.add(rollup) }
        return folding.finish()
    }

    /// Calls `body` with every sample of a series between two times, in
    /// order, one chunk decoded at a time. Chunks do not overlap (a late
    /// sample is merged into its chunk), but a late sample may wait in the
    /// head: then they are gathered and sorted first, as `samples` does.
    func forEachSample(_ id: Int64, from: Int64, to: Int64, _ body: (Gorilla.Point) -> Void) throws {
        let rows = try overlappingSpans.query(.integer(id), .integer(from), .integer(to))
        let buffered = head[id] ?? []
        var ordered = true, end = Int64.min
        for row in rows {
            guard let start = row[0].integer, let last = row[1].integer, start > end else { ordered = false; break }
            end = last
        }
        if let first = buffered.first, first.timestamp <= end { ordered = false }
        guard ordered else {
            if let key = keys[id] { for sample in try samples(key, from: from, to: to) { body(sample) } }
            return
        }
        for row in rows {
            guard let data = row[2].blob else { continue }
            for sample in try Gorilla.decode(data) where sample.timestamp >= from && sample.timestamp <= to { body(sample) }
        }
        for sample in buffered where sample.timestamp >= from && sample.timestamp <= to { body(sample) }
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

    /// A host's series (of one metric, if given): filtered before they are
    /// sorted, so a fleet's 30,000 series cost one pass, not a sort.
    public func series(host: String, metric: String? = nil) -> [Key] {
        ids.keys.filter { key in (metric == nil || key.metric == metric) && key.labels.contains { $0.name == "host" && $0.value == host } }.sorted()
    }
}
