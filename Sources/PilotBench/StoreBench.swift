import Glibc
import PilotCore
import PilotSQLite
import PilotStore
import PilotAgent
import PilotRemoteWrite

/// `pilot-bench store [--days 7] [--seed-days 1] [--promtool PATH]`: a data
/// set like the anchor's (15 hosts × 12 metrics every 30 s; percentages as
/// bounded random walks with one decimal, counters monotonic) into
/// Pilot's store, then into the seed's schema (rows, two indexes, 100 rows a
/// transaction) and Prometheus's TSDB (promtool tsdb create-blocks-from
/// openmetrics) in the same run: ingest rate, bytes per sample, and query
/// times. The seed's schema gets `--seed-days` of the data (it is slow); its
/// figures are per sample.
func runStoreBench(_ argv: [String]) throws {
    var days = 7, seedDays = 1
    var promtool = "promtool"
    var index = 0
    while index < argv.count {
        let value = index + 1 < argv.count ? argv[index + 1] : ""
        switch argv[index] {
        case "--days": days = max(1, Int(value) ?? 7)
        case "--seed-days": seedDays = max(1, Int(value) ?? 1)
        case "--promtool": promtool = value
        default: throw BenchError("unknown option \(argv[index])")
        }
        index += 2
    }
    let hosts = 15, metrics = 12, step: Int64 = 30_000
    let points = days * 86_400 / 30
    let start: Int64 = 1_764_000_000_000
    let names = ["cpu_pct", "mem_pct", "disk_pct", "swap_pct", "load1", "load5", "iowait_pct", "steal_pct",
                 "net_rx_bytes", "net_tx_bytes", "disk_read_bytes", "disk_write_bytes"]
    // The data, generated once: per series a walk (percent) or a counter.
    var random = SplitMix64(state: 11)
    var series: [(key: SeriesStore.Key, labels: [(String, String)], host: String, metric: String, values: [Double])] = []
    for host in 0..<hosts {
        for metric in 0..<metrics {
            let hostName = String(format2: host)
            var values: [Double] = []
            values.reserveCapacity(points)
            if metric < 8 {
                var value = Double(random.next() % 800) / 10
                for _ in 0..<points {
                    value = min(100, max(0, value + Double(Int(random.next() % 21) - 10) / 10))
                    values.append((value * 10).rounded() / 10)
                }
            } else {
                var counter = Double(random.next() % 1_000_000)
                for _ in 0..<points {
                    counter += Double(random.next() % 200_000)
                    values.append(counter)
                }
            }
            let labels = [("host", hostName)]
            series.append((SeriesStore.Key(metric: names[metric], labels: labels), labels, hostName, names[metric], values))
        }
    }
    let total = hosts * metrics * points
    print("store: \(hosts) hosts x \(metrics) metrics every 30 s for \(days) days = \(total) samples")
    let directory = try temporaryDirectory()
    defer { _ = try? Spawn.run(["rm", "-rf", directory], timeoutMilliseconds: 120_000) }

    // Pilot: time order, one transaction per 10 timestamps (1,800 samples), as a store fed by the hub would batch.
    let store = try SeriesStore(path: directory + "/pilot.db")
    let started = nowSeconds(), cpuStarted = cpuSeconds()
    var batch: [Sample] = []
    batch.reserveCapacity(series.count * 10)
    for point in 0..<points {
        let timestamp = start + Int64(point) * step
        for entry in series { batch.append(Sample(metric: entry.metric, labels: entry.labels, value: entry.values[point], timestamp: timestamp)) }
        if point % 10 == 9 || point == points - 1 {
            try store.append(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
    let elapsed = nowSeconds() - started, cpu = cpuSeconds() - cpuStarted
    let walBytes = fileSize(directory + "/pilot.db-wal")
    try store.checkpoint()
    let pilotBytes = fileSize(directory + "/pilot.db") + fileSize(directory + "/pilot.db-wal")
    let pilotPerSample = Double(pilotBytes) / Double(total)
    let footprint = try store.chunkFootprint()
    print("pilot store: \(Int(Double(total) / elapsed)) samples/s (\(Int(Double(total) / cpu)) per CPU second), \(format(pilotPerSample)) bytes/sample on disk (\(pilotBytes / 1_048_576) MiB after a checkpoint; the WAL had grown to \(walBytes / 1_048_576) MiB); the chunks alone \(format(Double(footprint.bytes) / Double(max(1, footprint.samples)))) bytes/sample")
    let one = series[0].key
    let end = start + Int64(points - 1) * step
    var queryStarted = nowSeconds()
    let day = try store.samples(one, from: end - 86_399_999, to: end)
    let dayMs = (nowSeconds() - queryStarted) * 1000
    queryStarted = nowSeconds()
    let hourly = try store.downsampled(one, from: start, to: end, step: 3_600_000, .avg)
    let weekMs = (nowSeconds() - queryStarted) * 1000
    print("pilot store: 24 h of one series (\(day.count) samples) in \(format(dayMs)) ms; \(days) days at 1 h step (\(hourly.count) averages) in \(format(weekMs)) ms (from the raw samples)")

    // Rollups are made as raw data ages out: here everything but the last
    // day, as with a raw retention of one day, in the store's bounded passes.
    let rollStarted = nowSeconds(), rollCPU = cpuSeconds()
    var passes = 0
    while try store.applyRetention(now: end + 1, rawAge: 86_400_000, rollupAge: 3_650 * 86_400_000, limit: 2_000) > 0 { passes += 1 }
    let rollElapsed = nowSeconds() - rollStarted, rollCPUUsed = cpuSeconds() - rollCPU
    let rolled = total - (try store.chunkFootprint().samples)
    try store.checkpoint()
    let rollupBytes = ["rollups", "rollup_blocks", "rollup_blocks_by_series", "rollup_blocks_by_end"].compactMap { store.pageBytes(of: $0) }.reduce(0, +)
    let rollupCounts = try store.rollupCounts()
    queryStarted = nowSeconds()
    let mixed = try store.downsampled(one, from: start, to: end, step: 3_600_000, .avg)
    let mixedMs = (nowSeconds() - queryStarted) * 1000
    print("pilot store: rolling up \(rolled) aged-out samples took \(format(rollElapsed)) s in \(passes) bounded passes (\(Int(Double(rolled) / rollCPUUsed)) samples per CPU second); the 5 m and 1 h rollups take \(format(Double(rollupBytes) / 1_048_576)) MiB (\(rollupCounts.blocks) compressed blocks, \(rollupCounts.rows) open rows), \(format(Double(rollupBytes) / Double(max(1, rolled)))) bytes per rolled-up sample; \(days) days at 1 h step from rollups and the last day's raw samples (\(mixed.count) averages) in \(format(mixedMs)) ms")

    // Remote write's share of the work: each batch as a WriteRequest, snappy-compressed (no network).
    let encodeStarted = cpuSeconds()
    var wireBytes = 0, requests = 0
    for first in stride(from: 0, to: points, by: 10) {
        var samples: [Sample] = []
        samples.reserveCapacity(series.count * 10)
        for point in first..<min(points, first + 10) {
            let timestamp = start + Int64(point) * step
            for entry in series { samples.append(Sample(metric: entry.metric, labels: entry.labels, value: entry.values[point], timestamp: timestamp)) }
        }
        wireBytes += Snappy.compress(try RemoteWriteRequest.encode(samples)).count
        requests += 1
    }
    let encodeCPU = cpuSeconds() - encodeStarted
    print("remote write: \(Int(Double(total) / encodeCPU)) samples per CPU second to encode and compress, \(format(Double(wireBytes) / Double(total))) bytes/sample on the wire (\(requests) requests of \(series.count * 10) samples; the HTTP side is not measured here)")

    // The seed's schema: a row per sample, two indexes, 100 rows a transaction.
    let seedPoints = min(points, seedDays * 2880)
    let seedTotal = seedPoints * series.count
    let seed = try SQLiteConnection(path: directory + "/seed.db")
    try seed.execute("""
        CREATE TABLE metrics(ts INTEGER, host TEXT, metric TEXT, value REAL, raw TEXT);
        CREATE INDEX idx_metrics_ts ON metrics(ts);
        CREATE INDEX idx_metrics_host_metric ON metrics(host, metric, ts);
        """)
    let insert = try seed.prepare("INSERT INTO metrics(ts, host, metric, value, raw) VALUES(?, ?, ?, ?, ?)")
    let seedStarted = nowSeconds()
    var rows = 0
    try seed.execute("BEGIN")
    for point in 0..<seedPoints {
        let ts = (start + Int64(point) * step) / 1000
        for entry in series {
            let value = entry.values[point]
            try insert.run(.integer(ts), .text(entry.host), .text(entry.metric), .real(value),
                           .text(#"{"host":"\#(entry.host)","\#(entry.metric)":\#(value),"ts":\#(ts)}"#))
            rows += 1
            if rows % 100 == 0 {
                try seed.execute("COMMIT")
                try seed.execute("BEGIN")
            }
        }
    }
    try seed.execute("COMMIT")
    let seedElapsed = nowSeconds() - seedStarted
    let seedBytes = fileSize(directory + "/seed.db") + fileSize(directory + "/seed.db-wal")
    let seedPerSample = Double(seedBytes) / Double(seedTotal)
    print("seed schema (\(seedDays) day, \(seedTotal) samples): \(Int(Double(seedTotal) / seedElapsed)) samples/s, \(format(seedPerSample)) bytes/sample")

    // Prometheus: the same data as OpenMetrics, into TSDB blocks by promtool.
    let openMetrics = directory + "/data.om"
    try writeOpenMetrics(series, start: start, step: step, points: points, to: openMetrics)
    let promStarted = nowSeconds()
    let output = (try? Spawn.run([promtool, "tsdb", "create-blocks-from", "openmetrics", openMetrics, directory + "/tsdb"], timeoutMilliseconds: 900_000))?.output
        ?? "promtool did not run"
    let promElapsed = nowSeconds() - promStarted
    let chunkBytes = (try? Spawn.run(["sh", "-c", "cat \(directory)/tsdb/*/chunks/* 2>/dev/null | wc -c"], timeoutMilliseconds: 60_000))
        .flatMap { Int($0.output.trimmingCharacters) } ?? 0
    if chunkBytes > 0 {
        let promPerSample = Double(chunkBytes) / Double(total)
        print("prometheus (promtool \(promtool)): \(Int(Double(total) / promElapsed)) samples/s building blocks, \(format(promPerSample)) bytes/sample in its chunks")
        print("ratios: pilot bytes/sample = \(format(pilotPerSample / promPerSample)) x Prometheus's (aim: at most 0.25); \(format(seedPerSample / pilotPerSample)) x smaller than the seed's schema; ingest \(format(Double(total) / elapsed / (Double(seedTotal) / seedElapsed))) x the seed's (aim: 1,000,000 samples/s)")
    } else {
        print("prometheus: no comparison (\(output.split(separator: "\n").last ?? "promtool missing"); apt-get install prometheus)")
    }
}

private func writeOpenMetrics(_ series: [(key: SeriesStore.Key, labels: [(String, String)], host: String, metric: String, values: [Double])], start: Int64, step: Int64,
                              points: Int, to path: String) throws {
    guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
    defer { fclose(file) }
    var grouped: [String: [Int]] = [:]
    for (index, entry) in series.enumerated() { grouped[entry.metric, default: []].append(index) }
    for (metric, indices) in grouped.sorted(by: { $0.key < $1.key }) {
        fputs("# TYPE \(metric) gauge\n", file)
        for index in indices {
            let entry = series[index]
            var lines = ""
            lines.reserveCapacity(points * 48)
            for point in 0..<points {
                let seconds = (start + Int64(point) * step) / 1000
                lines += "\(metric){host=\"\(entry.host)\"} \(entry.values[point]) \(seconds)\n"
            }
            fputs(lines, file)
        }
    }
    fputs("# EOF\n", file)
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : 0
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/pilot-bench-store-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw BenchError("mkdtemp failed") }
    return String(cString: made)
}

extension String {
    init(format2 host: Int) { self = "host-" + (host < 10 ? "0" : "") + String(host) }
    var trimmingCharacters: String { String(filter { !$0.isWhitespace }) }
}
