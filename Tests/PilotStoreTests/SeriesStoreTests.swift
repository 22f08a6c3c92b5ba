#if canImport(Glibc)
import Glibc
#endif
import PilotCore
import PilotStore
import Testing

func scratchDatabase() throws -> (directory: String, path: String) {
    var template = Array("/tmp/pilot-store-test-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Gorilla.CodecError.truncated }
    let directory = String(cString: made)
    return (directory, directory + "/store.db")
}

func removeScratch(_ directory: String) {
    for suffix in ["", "-wal", "-shm"] { unlink(directory + "/store.db" + suffix) }
    rmdir(directory)
}

extension Sample {
    /// A sample of a series named by the store's key (its labels sorted).
    init(key: SeriesStore.Key, timestamp: Int64, value: Double) {
        self.init(metric: key.metric, labels: key.labels.map { ($0.name, $0.value) }, value: value, timestamp: timestamp)
    }
}

@Suite struct SeriesStoreTests {
    let cpu = SeriesStore.Key(metric: "cpu_pct", labels: [("host", "web-01")])
    let disk = SeriesStore.Key(metric: "disk_pct", labels: [("mount", "/var"), ("host", "db-01")])

    func samples(_ key: SeriesStore.Key, _ range: ClosedRange<Int>, value: (Int) -> Double = { Double($0) / 10 }) -> [Sample] {
        range.map { Sample(key: key, timestamp: Int64($0) * 30_000, value: value($0)) }
    }

    @Test func samplesComeBackAcrossChunksAndTheHead() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        #expect(try store.append(samples(cpu, 1...25)) == 25)
        #expect(store.statistics.chunks == 2) // 20 in chunks, 5 in the head
        let all = try store.samples(cpu, from: 0, to: .max)
        #expect(all.map(\.timestamp) == (1...25).map { Int64($0) * 30_000 })
        #expect(all.map(\.value) == (1...25).map { Double($0) / 10 })
        #expect(try store.samples(cpu, from: 8 * 30_000, to: 12 * 30_000).map(\.value) == [0.8, 0.9, 1.0, 1.1, 1.2])
        #expect(store.series() == [cpu])
        #expect(try store.samples(disk, from: 0, to: .max).isEmpty)
    }

    @Test func labelsInAnyOrderAreOneSeries() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        try store.append([Sample(metric: "disk_pct", labels: [("host", "db-01"), ("mount", "/var")], value: 1, timestamp: 30_000),
                          Sample(metric: "disk_pct", labels: [("mount", "/var"), ("host", "db-01")], value: 2, timestamp: 60_000)])
        #expect(store.series() == [disk])
        #expect(try store.samples(disk, from: 0, to: .max).map(\.value) == [1, 2])
    }

    /// The rows of the `series` table are the file format: a message's
    /// series land there named as they always were.
    @Test func aMessagesSeriesAreTheRowsOfTheSeriesTable() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        let disk = #"{"host":"db-01","disk_pct":50,"mounts":[{"mount":"/","device":"/dev/vda1","disk_pct":50,"inodes_pct":7}],"ts":1764100000}"#
        let health = #"{"host":"web-01","check":"webapp","status":"ok","latency_ms":12.5,"ts":1764100000}"#
        var samples: [Sample] = []
        for (topic, json) in [("metrics/disk/db-01", disk), ("health/webapp/web-01", health)] {
            guard case .object(let payload) = try JSONValue.parse(json) else { continue }
            samples += Sample.extract(topic: try Topic(topic), payload: payload, receivedAt: 0)
        }
        #expect(try store.append(samples) == 4)
        let rows = try store.connection.prepare("SELECT metric, labels FROM series ORDER BY id").query().map { "\($0[0].text ?? "")|\($0[1].text ?? "")" }
        #expect(rows == ["disk_pct|host=db-01\u{1F}mount=/", "inodes_pct|host=db-01\u{1F}mount=/",
                         "check_ok|check=webapp\u{1F}host=web-01", "latency_ms|check=webapp\u{1F}host=web-01"])
        #expect(try store.samples(SeriesStore.Key(metric: "check_ok", labels: [("host", "web-01"), ("check", "webapp")]), from: 0, to: .max)
            == [Gorilla.Point(1_764_100_000_000, 1)])
    }

    @Test func theSameSampleTwiceIsStoredOnce() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        try store.append(samples(cpu, 1...15))
        #expect(try store.append(samples(cpu, 1...15)) == 0) // in chunks and in the head alike
        #expect(store.statistics.duplicates == 15)
        #expect(try store.samples(cpu, from: 0, to: .max).count == 15)
    }

    @Test func lateSamplesMergeIntoTheirChunks() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        let even = samples(cpu, 1...40).filter { $0.timestamp / 30_000 % 2 == 0 }
        let odd = samples(cpu, 1...40).filter { $0.timestamp / 30_000 % 2 == 1 }
        try store.append(even)
        try store.append(odd) // every one of these is older than some chunk
        let all = try store.samples(cpu, from: 0, to: .max)
        #expect(all.map(\.timestamp) == (1...40).map { Int64($0) * 30_000 })
        #expect(try store.append(odd) == 0)
        // Stepping reads the chunks one at a time; a late sample waiting in the
        // head (older than the chunks) makes it read them all, sorted: the same steps.
        try store.append([Sample(metric: "cpu_pct", labels: [("host", "web-01")], value: 0.05, timestamp: 45_000)])
        let expected = Downsample.aggregate(try store.samples(cpu, from: 0, to: .max), from: 0, step: 120_000, .avg)
        #expect(expected.count == 11)
        #expect(try store.downsampled(cpu, from: 0, to: .max, step: 120_000, .avg) == expected)
        #expect(try store.bands(cpu, from: 0, to: .max, step: 120_000).map { Gorilla.Point($0.start, $0.average) } == expected)
    }

    @Test func aHostsSeriesAreFoundWithoutTheOthers() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        let other = SeriesStore.Key(metric: "cpu_pct", labels: [("host", "web-02")])
        let mem = SeriesStore.Key(metric: "mem_pct", labels: [("host", "web-01")])
        try store.append(samples(cpu, 1...3) + samples(other, 1...3) + samples(disk, 1...3) + samples(mem, 1...3))
        #expect(store.series(host: "web-01") == [cpu, mem])
        #expect(store.series(host: "web-01", metric: "mem_pct") == [mem])
        #expect(store.series(host: "db-01") == [disk])
        #expect(store.series(host: "nobody").isEmpty)
    }

    @Test func whatAppendReturnedFromSurvivesAReopen() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        do {
            let store = try SeriesStore(path: path, chunkSamples: 10)
            try store.append(samples(cpu, 1...13) + samples(disk, 1...3, value: { _ in 97 }))
        } // no close: the process could have died here
        let reopened = try SeriesStore(path: path, chunkSamples: 10)
        #expect(try reopened.samples(cpu, from: 0, to: .max).count == 13)
        #expect(try reopened.samples(disk, from: 0, to: .max).map(\.value) == [97, 97, 97])
        #expect(try reopened.append(samples(cpu, 10...20)) == 7) // 10...13 again are duplicates
        #expect(reopened.seriesCount == 2)
    }
}

@Suite struct DownsampleTests {
    @Test func stepsAggregateAsAsked() {
        let samples = [(0, 1.0), (10, 3.0), (20, 2.0), (60, 5.0), (130, 7.0)].map { Gorilla.Point(Int64($0.0), $0.1) }
        #expect(Downsample.aggregate(samples, from: 0, step: 60, .avg) == [Gorilla.Point(0, 2), Gorilla.Point(60, 5), Gorilla.Point(120, 7)])
        #expect(Downsample.aggregate(samples, from: 0, step: 60, .max).map(\.value) == [3, 5, 7])
        #expect(Downsample.aggregate(samples, from: 0, step: 60, .min).map(\.value) == [1, 5, 7])
        #expect(Downsample.aggregate(samples, from: 0, step: 60, .last).map(\.value) == [2, 5, 7])
        #expect(Downsample.aggregate(samples, from: 0, step: 60, .count).map(\.value) == [3, 1, 1])
        #expect(Downsample.aggregate(samples, from: 15, step: 60, .count) == [Gorilla.Point(15, 2), Gorilla.Point(75, 1)])
    }
}

@Suite struct PromQueryTests {
    @Test func selectorsAndFunctionsParse() throws {
        let plain = try PromQuery.parse(#"cpu_pct{host="web-01", mount="/"}"#)
        #expect(plain.metric == "cpu_pct" && plain.matchers.map(\.0) == ["host", "mount"] && plain.function == nil)
        let named = try PromQuery.parse(#"{__name__="disk_pct",host="db-01"}"#)
        #expect(named.metric == "disk_pct" && named.matchers.count == 1)
        let ranged = try PromQuery.parse(#"avg_over_time(cpu_pct{host="a"}[5m])"#)
        #expect(ranged.function == .avgOverTime && ranged.rangeMilliseconds == 300_000)
    }

    @Test(arguments: [#"sum(cpu_pct)"#, #"cpu_pct{host!="a"}"#, #"cpu_pct{host=~"a.*"}"#, #"cpu_pct[5m]"#, #"rate(cpu_pct)"#, "", #"{host="a"}"#])
    func unsupportedQueriesSaySo(text: String) {
        #expect { try PromQuery.parse(text) } throws: { "\($0)".hasPrefix("invalid query") }
    }

    @Test func valuesFollowPrometheusLookbackAndFunctions() throws {
        let samples = (0..<10).map { Gorilla.Point(Int64($0) * 30_000, Double($0)) }
        let plain = try PromQuery.parse("x")
        #expect(plain.value(at: 45_000, in: samples) == 1)       // the newest at or before
        #expect(plain.value(at: 270_000 + 299_000, in: samples) == 9) // within 5 minutes
        #expect(plain.value(at: 270_000 + 300_000, in: samples) == nil) // stale
        #expect(try PromQuery.parse("max_over_time(x[1m])").value(at: 120_000, in: samples) == 4)
        #expect(try PromQuery.parse("avg_over_time(x[1m])").value(at: 120_000, in: samples) == 3.5)
        #expect(try PromQuery.parse("rate(x[5m])").value(at: 270_000, in: samples) == 1.0 / 30)
    }
}

@Suite struct RollupRetentionTests {
    let key = SeriesStore.Key(metric: "cpu_pct", labels: [("host", "web-01")])

    @Test func rollupsMadeAsRawDataAgesOutEqualItsAggregatesAndIgnoreDuplicates() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 50)
        var random = SplitMix64(state: 3)
        let start: Int64 = 1_764_000_000_000
        let samples = (0..<600).map { Sample(key: key, timestamp: start + Int64($0) * 30_000, value: Double(random.next() % 1000) / 10) }
        for batch in stride(from: 0, to: 600, by: 37) { try store.append(Array(samples[batch..<min(600, batch + 37)])) }
        try store.append(Array(samples[100..<300])) // resent: must not count again
        let raw = try store.samples(key, from: 0, to: .max)
        #expect(raw.count == 600)
        // Within raw retention there are no rollups: the raw samples answer.
        #expect(try store.rollups(key, resolution: 300_000, from: 0, to: .max).isEmpty)
        // Everything ages out (chunks and the head's remainder), in bounded passes.
        let later = start + 40 * 86_400_000
        while try store.applyRetention(now: later, rawAge: 30 * 86_400_000, rollupAge: 365 * 86_400_000, limit: 3) > 0 {}
        #expect(try store.samples(key, from: 0, to: .max).isEmpty)
        for resolution in SeriesStore.rollupResolutions {
            let rollups = try store.rollups(key, resolution: resolution, from: 0, to: .max)
            let expected = Downsample.aggregate(raw, from: 0, step: resolution, .count)
            #expect(rollups.map(\.start) == expected.map(\.timestamp))
            #expect(rollups.map { Double($0.count) } == expected.map(\.value))
            #expect(rollups.map(\.min) == Downsample.aggregate(raw, from: 0, step: resolution, .min).map(\.value))
            #expect(rollups.map(\.max) == Downsample.aggregate(raw, from: 0, step: resolution, .max).map(\.value))
            let averages = Downsample.aggregate(raw, from: 0, step: resolution, .avg).map(\.value)
            #expect(zip(rollups.map(\.average), averages).allSatisfy { abs($0 - $1) < 1e-9 })
        }
        // A store reopened after that keeps them, and refuses the old samples again.
        let reopened = try SeriesStore(path: path, chunkSamples: 50)
        reopened.refuse(olderThan: later - 30 * 86_400_000)
        #expect(try reopened.append(Array(samples[0..<10])) == 0)
        #expect(try reopened.rollups(key, resolution: 3_600_000, from: 0, to: .max).map(\.count).reduce(0, +) == 600)
    }

    @Test func retentionRollsUpOldRawDataInBoundedStepsAndQueriesSpanBoth() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 10)
        let day: Int64 = 86_400_000
        let samples = (0..<2_880).map { Sample(key: key, timestamp: Int64($0) * 30_000, value: Double($0 % 120)) } // one day
        try store.append(samples)
        let now = 31 * day
        var steps = 0
        while try store.applyRetention(now: now, rawAge: 30 * day + 12 * 3_600_000, rollupAge: 365 * day, limit: 50) > 0 { steps += 1 }
        #expect(steps > 1) // bounded: several small passes
        let left = try store.samples(key, from: 0, to: .max)
        #expect(left.allSatisfy { $0.timestamp >= 12 * 3_600_000 - 300_000 }) // the first half day's chunks are gone
        #expect(left.count < 2_880 && left.count >= 1_440)
        let hourly = try store.rollups(key, resolution: 3_600_000, from: 0, to: .max)
        #expect(hourly.map(\.count).reduce(0, +) + left.count == 2_880) // every sample in exactly one of them
        #expect(hourly.first == SeriesStore.Rollup(start: 0, min: 0, max: 119, sum: 7_140, count: 120))
        // A day at 1 h steps: rollups for the morning, raw samples for the afternoon, the same answer throughout.
        for aggregate in [Downsample.Aggregate.avg, .min, .max, .count] {
            let points = try store.downsampled(key, from: 0, to: day - 1, step: 3_600_000, aggregate)
            #expect(points == Downsample.aggregate(samples.map { Gorilla.Point($0.timestamp, $0.value) }, from: 0, step: 3_600_000, aggregate), "\(aggregate)")
        }
        // The dashboard's bands: min, average and max at once, each equal to its own query, across rollups and raw samples.
        for step: Int64 in [3_600_000, 300_000, 60_000] {
            let bands = try store.bands(key, from: 0, to: day - 1, step: step)
            #expect(!bands.isEmpty)
            let average = try store.downsampled(key, from: 0, to: day - 1, step: step, .avg)
            let low = try store.downsampled(key, from: 0, to: day - 1, step: step, .min)
            let high = try store.downsampled(key, from: 0, to: day - 1, step: step, .max)
            #expect(bands.map { Gorilla.Point($0.start, $0.average) } == average, "step \(step)")
            #expect(bands.map { Gorilla.Point($0.start, $0.min) } == low, "step \(step)")
            #expect(bands.map { Gorilla.Point($0.start, $0.max) } == high, "step \(step)")
        }
        // A late resend older than raw retention is refused, not counted twice in the rollups.
        #expect(try store.append([Sample(key: key, timestamp: 0, value: 1)]) == 0)
        #expect(store.statistics.tooOld == 1)
        #expect(try store.rollups(key, resolution: 3_600_000, from: 0, to: 0).first?.count == 120)
        // Rollups past their own retention go too.
        while try store.applyRetention(now: 400 * day, rawAge: 30 * day, rollupAge: 365 * day, limit: 50) > 0 {}
        #expect(try store.rollups(key, resolution: 3_600_000, from: 0, to: .max).isEmpty)
    }
}

@Suite struct RollupAggregateTests {
    @Test func rollupsMergeIntoLargerSteps() {
        let rollups = [
            SeriesStore.Rollup(start: 0, min: 1, max: 5, sum: 30, count: 10),
            SeriesStore.Rollup(start: 300_000, min: 0, max: 9, sum: 50, count: 10),
            SeriesStore.Rollup(start: 3_600_000, min: 2, max: 2, sum: 20, count: 10),
        ]
        #expect(Downsample.aggregate(rollups: rollups, from: 0, step: 3_600_000, .avg) == [Gorilla.Point(0, 4), Gorilla.Point(3_600_000, 2)])
        #expect(Downsample.aggregate(rollups: rollups, from: 0, step: 3_600_000, .min).map(\.value) == [0, 2])
        #expect(Downsample.aggregate(rollups: rollups, from: 0, step: 3_600_000, .max).map(\.value) == [9, 2])
        #expect(Downsample.aggregate(rollups: rollups, from: 0, step: 3_600_000, .count).map(\.value) == [20, 10])
    }
}

@Suite struct RollupBlockTests {
    let key = SeriesStore.Key(metric: "disk_pct", labels: [("host", "db-01"), ("mount", "/")])

    @Test func blocksRoundTripAndRefuseGarbage() throws {
        var random = SplitMix64(state: 5)
        let rollups = (0..<300).map { i -> SeriesStore.Rollup in
            let low = Double(random.next() % 1000) / 10
            return SeriesStore.Rollup(start: Int64(i) * 300_000, min: low, max: low + Double(random.next() % 100) / 10,
                                      sum: Double(random.next() % 100_000) / 10, count: Int(random.next() % 3) + 9)
        }
        let encoded = try RollupCodec.encode(rollups)
        #expect(try RollupCodec.decode(encoded) == rollups)
        #expect(throws: Gorilla.CodecError.self) { try RollupCodec.decode(Array(encoded.dropLast(9))) }
        #expect(throws: Gorilla.CodecError.self) { try RollupCodec.decode([0, 0, 0, 200, 1, 2]) }
    }

    @Test func finalRollupsMoveIntoBlocksAndReadTheSame() throws {
        let (directory, path) = try scratchDatabase()
        defer { removeScratch(directory) }
        let store = try SeriesStore(path: path, chunkSamples: 60)
        let day: Int64 = 86_400_000
        var random = SplitMix64(state: 8)
        var value = 50.0
        // Four days, a sample a minute.
        let samples = (0..<5_760).map { i -> Sample in
            value = min(100, max(0, value + Double(Int(random.next() % 21) - 10) / 10))
            return Sample(key: key, timestamp: Int64(i) * 60_000, value: (value * 10).rounded() / 10)
        }
        for part in stride(from: 0, to: samples.count, by: 500) { try store.append(Array(samples[part..<min(samples.count, part + 500)])) }
        let raw = samples.map { Gorilla.Point($0.timestamp, $0.value) }
        // Three of the four days age out, in small passes.
        while try store.applyRetention(now: 34 * day, rawAge: 31 * day, rollupAge: 365 * day, limit: 7) > 0 {}
        let counts = try store.rollupCounts()
        #expect(counts.blocks >= 3) // 5-minute: three days of 288
        #expect(counts.rows < 400)  // only the unfinished tail stays rows
        for resolution in SeriesStore.rollupResolutions {
            let rollups = try store.rollups(key, resolution: resolution, from: 0, to: 3 * day - 1)
            let expected = Downsample.aggregate(Array(raw.prefix { $0.timestamp < 3 * day }), from: 0, step: resolution, .count)
            #expect(rollups.map(\.start) == expected.map(\.timestamp))
            #expect(rollups.map { Double($0.count) } == expected.map(\.value))
            #expect(rollups.map(\.max) == Downsample.aggregate(raw, from: 0, step: resolution, .max).prefix(rollups.count).map(\.value))
        }
        // Rollups of short decimals stay small: a few bytes a bucket, not a 40-odd-byte row.
        let fiveMinute = try store.rollups(key, resolution: 300_000, from: 0, to: 3 * day - 1)
        let blockBytes = try RollupCodec.encode(fiveMinute).count
        #expect(blockBytes < fiveMinute.count * 8, "\(blockBytes) bytes for \(fiveMinute.count) rollups")
        // The whole range reads the same from blocks, rows and raw samples together.
        for aggregate in [Downsample.Aggregate.avg, .min, .max, .count] {
            let points = try store.downsampled(key, from: 0, to: 4 * day - 1, step: 3_600_000, aggregate)
            let expected = Downsample.aggregate(raw, from: 0, step: 3_600_000, aggregate)
            #expect(points.count == expected.count)
            #expect(zip(points, expected).allSatisfy { $0.timestamp == $1.timestamp && abs($0.value - $1.value) < 1e-9 }, "\(aggregate)")
        }
        // Blocks past rollup retention go too.
        while try store.applyRetention(now: 400 * day, rawAge: 31 * day, rollupAge: 365 * day, limit: 7) > 0 {}
        #expect(try store.rollupCounts() == (0, 0))
    }
}
