// pilot-bench: benchmarks kept out of the shipped binary (`make bench`).
//
//   pilot-bench registry [--pilot ./pilot] [--nodes 10000] [--interval 30] [--compress 10] [--window 30]
//   pilot-bench fleet [--pilot ./pilot] [--nodes 1000] [--interval 30] [--cycles 3] [--nodes-per-worker N]   (FleetBench.swift, FleetWorker.swift)
//   pilot-bench beacon-attack --beacon HOST:PORT --target KEY [--mode strangers|registered] [--registry HOST:PORT] ...
//     (an attacker for tests/system/test_beacon_abuse.sh; see BeaconAttack.swift)
//
// Starts `pilot registry` as a child process on loopback, connects N
// simulated nodes (each its own key and encrypted channel, spread over
// source addresses 127.0.1.x as hosts would be), registers them, then
// heartbeats every interval/compress seconds for a measured window. It
// reports the registry's CPU (% of one core, from /proc/PID/stat) and peak
// RSS (VmHWM), heartbeat latency p50/p99 and failures; the CPU at the real
// interval is the measured figure divided by the compression factor.
import Glibc
import NIOCore
import NIOPosix
import PilotCore
import PilotCrypto
import PilotRegistry
import PilotTransport
import PilotWire
import PilotNode
import Logging

struct Arguments {
    var pilot = "./pilot"
    var nodes = 10_000
    var interval = 30.0
    var compress = 10.0
    var window = 30.0

    init(_ argv: [String]) throws {
        try eachOption(argv) { flag, value in
            switch flag {
            case "--pilot": pilot = value
            case "--nodes": nodes = Int(value) ?? 0
            case "--interval": interval = Double(value) ?? 0
            case "--compress": compress = Double(value) ?? 0
            case "--window": window = Double(value) ?? 0
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard nodes > 0, interval > 0, compress >= 1, window > 0 else { throw BenchError("all numbers must be positive (compress at least 1)") }
    }
}

/// `--flag value` pairs, in order; every flag takes a value.
func eachOption(_ argv: [String], _ body: (_ flag: String, _ value: String) throws -> Void) throws {
    var index = 0
    while index < argv.count {
        guard index + 1 < argv.count else { throw BenchError("\(argv[index]) needs a value") }
        try body(argv[index], argv[index + 1])
        index += 2
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func nowSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// CPU seconds (user + system) a process has used.
func cpuSeconds(pid: pid_t) -> Double {
    guard let text = try? LocalFile.readText("/proc/\(pid)/stat", maxBytes: 4096),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func statusField(pid: pid_t, _ name: String) -> Int {
    guard let text = try? LocalFile.readText("/proc/\(pid)/status", maxBytes: 16_384) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
    }
    return 0
}

func spawn(_ argv: [String]) throws -> pid_t {
    var pid: pid_t = 0
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    let status = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
    guard status == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(status)))") }
    return pid
}

/// `value` with `digits` decimals (no String(format:) without Foundation).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "n/a" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = Int(rounded / scale), fraction = Int(rounded.truncatingRemainder(dividingBy: scale))
    let sign = value < 0 && rounded > 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let text = String(fraction)
    return "\(sign)\(whole)." + String(repeating: "0", count: digits - text.count) + text
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

/// One simulated node: its channel, and when each request was sent.
/// Confined to the bench's event loop.
final class SimulatedNode: SecureStreamDelegate, @unchecked Sendable {
    let key: SigningKey
    let index: Int
    let bench: RegistryBench
    var stream: SecureStreamHandler?
    var nextID: UInt64 = 1
    var sentAt: [UInt64: Double] = [:]
    var registered = false

    init(key: SigningKey, index: Int, bench: RegistryBench) {
        self.key = key
        self.index = index
        self.bench = bench
    }

    func send(_ operation: RegistryOperation, _ body: JSONObject = JSONObject()) {
        guard let stream else { return bench.failed("not connected") }
        let id = nextID
        nextID += 1
        sentAt[id] = nowSeconds()
        if !stream.send(RegistryProtocol.request(id: id, operation, body: body, signer: key, now: WallClock.nowMilliseconds())) {
            sentAt[id] = nil
            bench.failed("send failed")
        }
    }

    func secureStreamEstablished(_ stream: SecureStreamHandler) {
        send(.register, JSONObject([("hostname", .string("bench-\(index)")), ("tags", .array([.string("bench")]))]))
    }

    func secureStream(_ stream: SecureStreamHandler, received message: [UInt8]) {
        guard let json = try? JSONValue.parse(message), let id = json["id"]?.doubleValue,
              let started = sentAt.removeValue(forKey: UInt64(id)) else { return }
        guard json["ok"] == .bool(true) else { return bench.failed(json["error"]?.stringValue ?? "refused") }
        if !registered {
            registered = true
            bench.registeredOne()
        } else {
            bench.heartbeatAnswered(latency: nowSeconds() - started)
        }
    }

    func secureStreamClosed(_ stream: SecureStreamHandler, reason: String?) {
        if self.stream === stream { self.stream = nil }
        bench.failed("connection closed: \(reason ?? "by the registry")")
    }
}

/// Shared counters, touched only on the bench's single event loop.
final class RegistryBench: @unchecked Sendable {
    var nodes: [SimulatedNode] = []
    var registered = 0
    var latencies: [Double] = []
    var measuring = false
    var failures = 0
    var failureReasons: [String: Int] = [:]

    func registeredOne() { registered += 1 }
    func heartbeatAnswered(latency: Double) { if measuring { latencies.append(latency) } }
    func failed(_ reason: String) {
        failures += 1
        failureReasons[reason, default: 0] += 1
    }
}

func runRegistryBench(_ arguments: Arguments) async throws {
    raiseOpenFileLimit()
    let period = arguments.interval / arguments.compress
    let offlineAfter = Int(max(3, (period * 4).rounded(.up)))
    var template = Array("/tmp/pilot-bench-XXXXXX".utf8CString)
    let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    let pid = try spawn([arguments.pilot, "registry", "--listen", "127.0.0.1:0", "--http", "off", "--state-dir", directory,
                         "--offline-after", "\(offlineAfter)", "--log-level", "error"])
    defer { kill(pid, SIGTERM); var status: Int32 = 0; waitpid(pid, &status, 0) }

    var addressText = ""
    for _ in 0..<200 where addressText.isEmpty {
        addressText = (try? LocalFile.readText(directory + "/registry.addr", maxBytes: 100))?.split(separator: "\n").first.map(String.init) ?? ""
        if addressText.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
    }
    let endpoint = try Endpoint(parsing: addressText)
    print("registry pid \(pid) on \(endpoint); \(arguments.nodes) nodes, heartbeat every \(period) s (\(arguments.interval) s compressed \(arguments.compress)x)")

    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let bench = RegistryBench()
    let keys = (0..<arguments.nodes).map { _ in SigningKey.generate() }
    let baselineCPU = cpuSeconds(pid: pid)

    // Connect and register everyone, 200 connections in flight at a time.
    let registerStart = nowSeconds()
    let nodeCount = arguments.nodes
    try await loop.submit { bench.nodes = keys.enumerated().map { SimulatedNode(key: $1, index: $0, bench: bench) } }.get()
    for batch in stride(from: 0, to: nodeCount, by: 200) {
        let connects = try await loop.submit { () -> [EventLoopFuture<any Channel>] in
            bench.nodes[batch..<min(batch + 200, nodeCount)].map { node in
                let (channel, first) = try! SecureChannel.initiator(identity: node.key, responder: nil, preference: AEADAlgorithm.localPreference())
                let handler = SecureStreamHandler(channel: channel, firstFrame: first, maxPayload: 65_536, delegate: node)
                node.stream = handler
                let bound = NIOLoopBound(handler, eventLoop: loop)
                return ClientBootstrap(group: loop)
                    .bind(to: try! SocketAddress(ipAddress: "127.0.1.\(1 + node.index / 1000)", port: 0))
                    .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) } }
                    .connect(host: endpoint.host, port: Int(endpoint.port))
            }
        }.get()
        for connect in connects { _ = try? await connect.get() }
    }
    for _ in 0..<600 {
        let done = try await loop.submit { bench.registered + bench.failures >= nodeCount }.get()
        if done { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    let registerSeconds = nowSeconds() - registerStart
    let registeredCount = try await loop.submit { bench.registered }.get()
    let registrationCPU = cpuSeconds(pid: pid) - baselineCPU
    print("registered \(registeredCount) nodes in \(fixed(registerSeconds, 1)) s (\(Int(Double(registeredCount) / registerSeconds))/s), registry CPU \(fixed(registrationCPU, 2)) s")

    // Heartbeats, each node at its own phase within the period.
    let schedules = try await loop.submit { () -> [RepeatedTask] in
        bench.nodes.map { node in
            let phase = TimeAmount.nanoseconds(Int64(Double.random(in: 0..<period) * 1e9))
            return loop.scheduleRepeatedTask(initialDelay: phase, delay: .nanoseconds(Int64(period * 1e9))) { _ in
                node.send(.heartbeat)
            }
        }
    }.get()
    try await Task.sleep(for: .seconds(period)) // warm-up: every node heartbeats once
    try await loop.submit { bench.measuring = true; bench.latencies.reserveCapacity(Int(Double(nodeCount) * arguments.window / period) + 1000) }.get()
    let failuresBefore = try await loop.submit { bench.failures }.get()
    let cpuStart = cpuSeconds(pid: pid), wallStart = nowSeconds()
    try await Task.sleep(for: .seconds(arguments.window))
    let cpuUsed = cpuSeconds(pid: pid) - cpuStart, wall = nowSeconds() - wallStart
    let (latencies, failures, reasons) = try await loop.submit { () -> ([Double], Int, [String: Int]) in
        bench.measuring = false
        schedules.forEach { $0.cancel() }
        return (bench.latencies.sorted(), bench.failures, bench.failureReasons)
    }.get()
    let rss = statusField(pid: pid, "VmHWM"), rssNow = statusField(pid: pid, "VmRSS")

    let cpuPercent = cpuUsed / wall * 100
    let beatsPerSecond = Double(latencies.count) / wall
    print("")
    print("registry benchmark (\(arguments.nodes) nodes, measured over \(fixed(wall, 0)) s)")
    print("  heartbeats answered        \(latencies.count) (\(fixed(beatsPerSecond, 0))/s)")
    print("  heartbeat latency p50/p99  \(fixed(percentile(latencies, 0.5) * 1000, 2)) ms / \(fixed(percentile(latencies, 0.99) * 1000, 2)) ms")
    print("  registry CPU, measured     \(fixed(cpuPercent, 1)) % of one core at one heartbeat per \(period) s")
    print("  registry CPU, real \(Int(arguments.interval)) s    \(fixed(cpuPercent / arguments.compress, 2)) % of one core (measured / \(arguments.compress)); target < 5 %")
    print("  registry peak RSS          \(fixed(Double(rss) / 1024, 1)) MB (now \(fixed(Double(rssNow) / 1024, 1)) MB); target < 64 MB")
    print("  failures                   \(failures - failuresBefore) during the window, \(failures) in all (target 0)")
    for (reason, count) in reasons.sorted(by: { $0.value > $1.value }).prefix(5) { print("    \(count) × \(reason)") }
    try? await group.shutdownGracefully()
}

let argv = Array(CommandLine.arguments.dropFirst())
do {
    switch argv.first {
    case "registry": try await runRegistryBench(try Arguments(Array(argv.dropFirst())))
    case "fleet": try await runFleetBench(try FleetArguments(Array(argv.dropFirst())))
    case "fleet-worker": try await runFleetWorker(try FleetWorkerArguments(Array(argv.dropFirst())))
    case "tunnel": try await runTunnelBench(seconds: argv.count > 2 && argv[1] == "--seconds" ? Int(argv[2]) ?? 5 : 5)
    case "collect": runCollectBench(cycles: argv.count > 2 && argv[1] == "--cycles" ? max(10, Int(argv[2]) ?? 1000) : 1000)
    case "store": try runStoreBench(Array(argv.dropFirst()))
    case "seed-history": try runHistorySeed(Array(argv.dropFirst()))
    case "attack" where argv.count > 1 && argv[1] == "handshake-flood": try runHandshakeFlood(Array(argv.dropFirst(2)))
    case "beacon-attack": try await runBeaconAttack(try BeaconAttackArguments(Array(argv.dropFirst())))
    default:
        throw BenchError("usage: pilot-bench registry [--pilot PATH] [--nodes N] [--interval S] [--compress X] [--window S] | pilot-bench fleet [--pilot PATH] [--nodes N] [--interval S] [--cycles N] [--start-concurrency N] [--nodes-per-worker N] | pilot-bench tunnel [--seconds S] | pilot-bench collect [--cycles N] | pilot-bench store [--days D] [--seed-days D] [--promtool PATH] | pilot-bench seed-history --db PATH --host NAME [--days D] [--interval S] | pilot-bench attack handshake-flood --to HOST:PORT --key BASE64 [--count N] [--sources N] | pilot-bench beacon-attack --beacon HOST:PORT --target KEY [--mode strangers|registered] [--registry HOST:PORT] [--keys N] [--seconds S] [--rate N] [--size BYTES]")
    }
} catch {
    let line = Array("pilot-bench: \(error)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

