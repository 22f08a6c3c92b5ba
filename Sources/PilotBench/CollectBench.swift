import Glibc
import PilotAgent

/// `pilot-bench collect [--cycles N]`: the CPU one cycle of the agent's
/// built-in collectors costs (read /proc, statvfs every real filesystem,
/// build the messages and their JSON), measured in this process with the
/// thread CPU clock around each cycle; prints the median and p90.
func runCollectBench(cycles: Int) {
    let reader = HostReader()
    var collector = Collector(host: "bench-01")
    var samples: [Double] = []
    var bytes = 0
    for index in 0..<(cycles + 10) {
        let before = threadCPUSeconds()
        let messages = collector.cycle(reader.snapshot(), now: Double(index), timestamp: 1_764_100_000 + Int64(index))
        bytes += messages.reduce(0) { $0 + $1.json.utf8.count }
        let spent = threadCPUSeconds() - before
        if index >= 10 { samples.append(spent * 1000) } // the first cycles warm caches
    }
    samples.sort()
    let median = samples[samples.count / 2], p90 = samples[samples.count * 9 / 10]
    print("collect: \(cycles) cycles of the built-in collectors: median \(format(median)) ms CPU per cycle, p90 \(format(p90)) ms (aim: at most 1 ms); \(bytes / (cycles + 10)) bytes of JSON per cycle")
}

func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func format(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}
