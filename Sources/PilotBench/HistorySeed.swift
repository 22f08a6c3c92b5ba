import Glibc
import PilotCore
import PilotStore
import PilotTransport

/// `pilot-bench seed-history --db PATH --host NAME [--days 30] [--interval 30]`:
/// fills a store with one host's history as the agent would have sent it
/// (its CPU, load, memory, swap, two mounts, an interface, a disk and a
/// check, every interval up to now), for the dashboard's host page
/// benchmark. Percentages are bounded random walks, rates noisy levels.
func runHistorySeed(_ argv: [String]) throws {
    var path = "", host = "", days = 30, interval: Int64 = 30
    var index = 0
    while index < argv.count {
        let value = index + 1 < argv.count ? argv[index + 1] : ""
        switch argv[index] {
        case "--db": path = value
        case "--host": host = value
        case "--days": days = max(1, Int(value) ?? 30)
        case "--interval": interval = max(1, Int64(value) ?? 30)
        default: throw BenchError("unknown option \(argv[index])")
        }
        index += 2
    }
    guard !path.isEmpty, !host.isEmpty else { throw BenchError("seed-history needs --db PATH and --host NAME") }
    let series: [(String, [(String, String)], ClosedRange<Double>)] = [
        ("cpu_pct", [], 0...100), ("user_pct", [], 0...80), ("system_pct", [], 0...20), ("iowait_pct", [], 0...10), ("steal_pct", [], 0...2),
        ("load", [], 0...8), ("load1", [], 0...8), ("load5", [], 0...6), ("load15", [], 0...4), ("procs", [], 150...250),
        ("mem_pct", [], 10...90), ("mem_used_kb", [], 1e6...7e6), ("swap_pct", [], 0...10),
        ("disk_pct", [("mount", "/")], 30...60), ("disk_pct", [("mount", "/var")], 40...95),
        ("inodes_pct", [("mount", "/")], 1...5), ("inodes_pct", [("mount", "/var")], 1...5),
        ("rx_bytes_ps", [("iface", "eth0")], 1e3...5e6), ("tx_bytes_ps", [("iface", "eth0")], 1e3...2e6),
        ("read_bytes_ps", [("device", "vda")], 0...5e6), ("write_bytes_ps", [("device", "vda")], 0...1e7), ("util_pct", [("device", "vda")], 0...60),
        ("latency_ms", [("check", "nginx")], 0.5...40), ("check_ok", [("check", "nginx")], 0...1),
    ]
    let store = try SeriesStore(path: path)
    let end = WallClock.nowMilliseconds() / 1000 / interval * interval * 1000
    let count = Int64(days) * 86_400 / interval
    let start = end - (count - 1) * interval * 1000
    var random = SplitMix64(state: 5)
    let began = WallClock.nowMilliseconds()
    var stored = 0
    for (metric, extra, range) in series {
        var value = (range.lowerBound + range.upperBound) / 2
        let span = range.upperBound - range.lowerBound
        var batch: [Sample] = []
        batch.reserveCapacity(20_000)
        for i in 0..<count {
            value = min(range.upperBound, max(range.lowerBound, value + span * (Double(random.next() % 2001) / 1000 - 1) * 0.02))
            let sample = metric == "check_ok" ? (random.next() % 500 == 0 ? 0 : 1) : (value * 10).rounded() / 10
            batch.append(Sample(metric: metric, labels: [("host", host)] + extra, value: sample, timestamp: start + i * interval * 1000))
            if batch.count == 20_000 {
                stored += try store.append(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        stored += try store.append(batch)
    }
    try store.checkpoint()
    print("seeded \(stored) samples: \(series.count) series of \(host), \(days) days every \(interval) s, in \((WallClock.nowMilliseconds() - began) / 1000) s")
}
