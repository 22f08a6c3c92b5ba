// pilot-bench fleet: N real overlay nodes against a real registry and a
// real hub (`pilot registry`, `pilot aggregator`: child processes, measured
// from /proc).
//
// Each simulated node is a `Node` with the agent's metrics role, as `pilot
// agent` runs it: its own Ed25519 identity, registry session, tunnel socket
// on its own loopback address (127.10.0.0/16 and up), handshake with the hub
// by the fleet's join token, event forwarder and spool, and the hardening
// defaults. The nodes run in worker processes (`pilot-bench fleet-worker`,
// FleetWorker.swift), as many nodes in each as its open-file limit allows
// (about ten descriptors a node), driven from here over pipes. What the
// nodes of a worker share, and a fleet does not: its event loops (one per
// core) and two threads for reading /proc, so every node reports this
// host's numbers under its own name; all spools live in one directory
// (tmpfs when /dev/shm is there, so 10,000 fsyncs a cycle measure the code,
// not the disk).
import Glibc
import Logging
import NIOCore
import NIOPosix
import PilotCore
import PilotCrypto
import PilotNode
import PilotRoles
import PilotTransport
import Synchronization

struct FleetArguments {
    var pilot = "./pilot"
    var nodes = 1_000
    var interval = 30.0
    var cycles = 3
    /// Nodes starting at once (over all workers).
    var startConcurrency = 64
    /// Nodes per worker process; by default as many as one process's
    /// open-file limit allows.
    var nodesPerWorker: Int?

    init(_ argv: [String]) throws {
        try eachOption(argv) { flag, value in
            switch flag {
            case "--pilot": pilot = value
            case "--nodes": nodes = Int(value) ?? 0
            case "--interval": interval = Double(value) ?? 0
            case "--cycles": cycles = Int(value) ?? 0
            case "--start-concurrency": startConcurrency = Int(value) ?? 0
            case "--nodes-per-worker": nodesPerWorker = Int(value) ?? 0
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard (1...60_000).contains(nodes) else { throw BenchError("--nodes must be between 1 and 60000") }
        guard interval >= 1, cycles >= 1, startConcurrency >= 1, (nodesPerWorker ?? 1) >= 1 else {
            throw BenchError("--interval (≥ 1 s), --cycles, --start-concurrency and --nodes-per-worker must be positive")
        }
    }
}

/// A process of the run (registry, hub), stopped by PID when the run ends.
struct Child {
    let name: String
    let pid: pid_t
    var cpu: Double { cpuSeconds(pid: pid) }
    var peakRSS: Int { statusField(pid: pid, "VmHWM") }
    var rss: Int { statusField(pid: pid, "VmRSS") }
    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

func runFleetBench(_ arguments: FleetArguments) async throws {
    // A share of nodes that fits one process's open-file limit runs in each
    // worker process (FleetWorker.swift).
    raiseOpenFileLimit()
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    // A node holds 11 descriptors (measured: 3 sockets, its event log's and
    // its spool's SQLite files, 3 each, the handshake floors and the state
    // lock); 14 leaves room for the connections of starting and status.
    let perWorker = arguments.nodesPerWorker ?? max(1, (Int(min(limit.rlim_cur, 1 << 30)) - 1_000) / 14)
    let workerCount = (arguments.nodes + perWorker - 1) / perWorker
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/pilot-fleet-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw BenchError("cannot make a directory in \(base)") }
    let directory = String(cString: made)
    defer { _ = try? captureOutput(["/bin/rm", "-rf", directory]) }
    let token = "fleet-" + (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
    try LocalFile.writeAtomically(directory + "/token", Array((token + "\n").utf8), mode: 0o600)

    let registry = Child(name: "registry", pid: try spawn([
        arguments.pilot, "registry", "--listen", "127.0.0.1:0", "--http", "off", "--state-dir", directory + "/registry",
        "--join-token", "@" + directory + "/token", "--log-level", "error",
    ]))
    defer { registry.stop() }
    let registryAddress = try await waitForFile(directory + "/registry/registry.addr", what: "the registry's address")
    _ = try captureOutput([arguments.pilot, "init", "--hostname", "hub-01", "--registry", registryAddress, "--join-token", "@" + directory + "/token",
                           "--state-dir", directory + "/hub"])
    func startHub(port: Int) throws -> Child {
        Child(name: "hub", pid: try spawn([
            arguments.pilot, "aggregator", "--state-dir", directory + "/hub", "--tunnel-listen", "127.0.0.1:\(port)", "--http", "off",
            "--no-metrics", "--no-default-rules", "--table-interval", "0", "--log-level", "error",
            // Silent for three cycles is down, as `pilot up` sets it: at a
            // stretched interval the default 90 s would flap every host.
            "--host-down-after", "\(Int((3 * arguments.interval).rounded(.up)))s",
        ]))
    }
    var hub = try startHub(port: 0)
    defer { hub.stop() }
    try await waitUntil(seconds: 30, "the hub to register") { hubStatus(arguments.pilot, directory)?["registered"] == .bool(true) }
    // Restarted on the same port, as a hub's unit would.
    guard let hubPort = hubStatus(arguments.pilot, directory)?["tunnel"]?.stringValue.flatMap({ try? Endpoint(parsing: $0) })?.port else {
        throw BenchError("the hub's status has no tunnel address")
    }
    let hubBaseRSS = hub.rss
    say("fleet: \(arguments.nodes) nodes in \(workerCount) worker process\(workerCount == 1 ? "" : "es"), one collection every \(fixed(arguments.interval, 0)) s; registry pid \(registry.pid), hub pid \(hub.pid); state in \(directory)")

    // Start everyone: each worker starts its share, a bounded number at a
    // time, as a fleet booting would.
    let startBegan = nowSeconds()
    let workers = try FleetWorkers(count: workerCount, nodes: arguments.nodes, perWorker: perWorker) { first, count in
        ["fleet-worker", "--registry", registryAddress, "--token-file", directory + "/token", "--directory", directory,
         "--first", "\(first)", "--count", "\(count)", "--interval", "\(arguments.interval)",
         "--start-concurrency", "\(max(1, arguments.startConcurrency / workerCount))"]
    }
    defer { workers.stop() }
    let startAnswers = try workers.readAll()
    let started = startAnswers.reduce(0) { $0 + Int($1["started"]?.int64Value ?? 0) }
    var failures: [String: Int] = [:]
    for answer in startAnswers {
        if case .object(let reasons)? = answer["failures"] { for (reason, count) in reasons { failures[reason, default: 0] += Int(count.int64Value ?? 0) } }
    }
    for (reason, count) in failures.sorted(by: { $0.value > $1.value }).prefix(10) { say("  \(count) nodes did not start: \(reason)") }
    guard started > 0 else { throw BenchError("no node started") }
    say("started \(started) nodes in \(fixed(nowSeconds() - startBegan, 1)) s")

    // Joined: the hub has acknowledged each node's first cycle.
    let joinDeadline = 120.0 + Double(arguments.nodes) / 50
    var spools = try workers.totals()
    while spools.delivering < started, nowSeconds() - startBegan < joinDeadline {
        try await Task.sleep(for: .seconds(2))
        spools = try workers.totals()
    }
    let joinSeconds = nowSeconds() - startBegan
    say("\(spools.delivering) of \(started) nodes delivering to the hub after \(fixed(joinSeconds, 1)) s")

    // The steady window: whole cycles, everyone publishing.
    let window = Double(arguments.cycles) * arguments.interval
    let hubCPU0 = hub.cpu, registryCPU0 = registry.cpu, workersCPU0 = workers.cpu, wall0 = nowSeconds()
    _ = try workers.ask("measure on")
    try await Task.sleep(for: .seconds(window))
    _ = try workers.ask("measure off")
    let wall = nowSeconds() - wall0
    let hubCPU = (hub.cpu - hubCPU0) / wall * 100, registryCPU = (registry.cpu - registryCPU0) / wall * 100
    let workersCPU = (workers.cpu - workersCPU0) / wall * 100
    let hubRSS = hub.rss, hubPeakRSS = hub.peakRSS, workersRSS = workers.rss
    var delays: [Double] = [], unconfirmed = 0
    for answer in try workers.ask("delays") {
        if case .array(let values)? = answer["delays"] { delays += values.compactMap(\.doubleValue) }
        unconfirmed += Int(answer["unconfirmed"]?.int64Value ?? 0)
    }
    delays.sort()
    say("steady window done: hub CPU \(fixed(hubCPU, 1)) %, \(delays.count) cycles acknowledged")

    // The hub is killed with the fleet running, and comes back on its port:
    // every node reconnects and delivers what it spooled meanwhile. A node
    // is back once the new hub acknowledged a message it published after
    // the kill (so this includes waiting for its next cycle, at most one
    // interval), and with it everything before.
    _ = try workers.ask("mark")
    let killed = nowSeconds()
    kill(hub.pid, SIGKILL)
    var status: Int32 = 0
    waitpid(hub.pid, &status, 0)
    hub = try startHub(port: Int(hubPort))
    var recovered = Double.nan
    while nowSeconds() - killed < 300 {
        try await Task.sleep(for: .seconds(1))
        if try workers.totals().caughtUp == started { recovered = nowSeconds() - killed; break }
    }
    let recoveryCPU = hub.cpu
    say("hub killed and restarted: every node back and drained after \(fixed(recovered, 1)) s (hub CPU \(fixed(recoveryCPU, 1)) s meanwhile)")

    // Stop collecting, let every spool drain, and count.
    _ = try workers.ask("stop")
    let drainBegan = nowSeconds()
    spools = try workers.totals()
    while spools.published > spools.acknowledged, nowSeconds() - drainBegan < 60 {
        try await Task.sleep(for: .seconds(1))
        spools = try workers.totals()
    }
    let inLog = hubStatus(arguments.pilot, directory)?["events"]?["hub"]?["log_messages"]?.int64Value ?? -1
    let lost = spools.published - spools.acknowledged
    if lost > 0 {
        say("nodes with messages the hub has not acknowledged, by state:")
        var states: [String: Int] = [:]
        for answer in try workers.ask("stuck") { if case .object(let counts) = answer { for (state, count) in counts { states[state, default: 0] += Int(count.int64Value ?? 0) } } }
        for (state, count) in states.sorted(by: { $0.value > $1.value }).prefix(10) { say("  \(count) × \(state)") }
    }

    say("")
    say("fleet benchmark (\(started) nodes, measured over \(fixed(wall, 0)) s = \(arguments.cycles) cycles of \(fixed(arguments.interval, 0)) s)")
    say("  all nodes delivering after   \(fixed(joinSeconds, 1)) s from the first start")
    say("  hub CPU                      \(fixed(hubCPU, 1)) % of one core; aim at 10,000 nodes < 15 %")
    say("  hub RSS, peak                \(fixed(Double(hubPeakRSS) / 1024, 1)) MB (\(fixed(Double(hubRSS) / 1024, 1)) MB at the end of the window, \(fixed(Double(hubBaseRSS) / 1024, 1)) MB before the fleet); aim < 256 MB")
    say("  hub memory per node          \(fixed(Double(hubRSS - hubBaseRSS) / Double(max(1, started)), 1)) kB")
    say("  spool to hub acknowledgement p50 \(fixed(percentile(delays, 0.5) * 1000, 1)) ms, p99 \(fixed(percentile(delays, 0.99) * 1000, 1)) ms (\(delays.count) cycles, \(unconfirmed) not acknowledged within 5 min)")
    say("  registry CPU                 \(fixed(registryCPU, 2)) % of one core; aim < 5 %")
    say("  registry RSS, peak           \(fixed(Double(registry.peakRSS) / 1024, 1)) MB; aim < 64 MB")
    say("  hub kill -9: back and drained \(fixed(recovered, 1)) s (including each node's next cycle, ≤ \(fixed(arguments.interval, 0)) s); aim < 60 s")
    say("  messages published           \(spools.published), acknowledged by the hub \(spools.acknowledged), in the hub's log \(inLog)")
    say("  messages lost                \(lost) (must be 0)")
    say("  the simulated fleet itself   \(fixed(workersCPU, 1)) % of one core, \(fixed(Double(workersRSS) / 1024, 0)) MB RSS in \(workerCount) process\(workerCount == 1 ? "" : "es") (on the same \(System.coreCount) cores as the hub)")

    _ = try? workers.ask("shutdown")
    if started < arguments.nodes { throw BenchError("\(arguments.nodes - started) of \(arguments.nodes) nodes did not start") }
    if lost != 0 || Int64(spools.published) != inLog { throw BenchError("\(lost) messages not acknowledged, \(spools.published) published against \(inLog) in the hub's log") }
    if !recovered.isFinite { throw BenchError("the fleet had not recovered 300 s after the hub's kill -9") }
}

/// The worker processes of a fleet run (pilot-bench fleet-worker), each
/// driven over a pipe: one command line to each, one answer line from each.
final class FleetWorkers {
    private struct Worker {
        let pid: pid_t
        let commands: Int32
        let answers: Int32
        var buffer: [UInt8] = []
    }
    private var workers: [Worker] = []

    init(count: Int, nodes: Int, perWorker: Int, arguments: (_ first: Int, _ count: Int) -> [String]) throws {
        let executable = (try? readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        for index in 0..<count {
            let first = index * perWorker
            var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
            guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw BenchError("pipe failed") }
            // Not inherited by the next workers (dup2 onto 0 and 1 clears the flag there).
            for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
            posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
            let argv = [executable] + arguments(first, min(perWorker, nodes - first))
            var pid: pid_t = 0
            var cArgs = argv.map { strdup($0) } + [nil]
            let status = posix_spawn(&pid, executable, &actions, nil, &cArgs, environ)
            cArgs.forEach { free($0) }
            posix_spawn_file_actions_destroy(&actions)
            close(toChild[0])
            close(fromChild[1])
            guard status == 0 else { throw BenchError("cannot start a fleet worker: \(String(cString: strerror(status)))") }
            workers.append(Worker(pid: pid, commands: toChild[1], answers: fromChild[0]))
        }
    }

    var cpu: Double { workers.reduce(0) { $0 + cpuSeconds(pid: $1.pid) } }
    var rss: Int { workers.reduce(0) { $0 + statusField(pid: $1.pid, "VmRSS") } }

    /// Sends `command` to every worker and returns their answers.
    func ask(_ command: String) throws -> [JSONValue] {
        let line = Array((command + "\n").utf8)
        for worker in workers {
            let written = line.withUnsafeBytes { write(worker.commands, $0.baseAddress, $0.count) }
            guard written == line.count else { throw BenchError("a fleet worker (pid \(worker.pid)) is gone") }
        }
        return try readAll()
    }

    func totals() throws -> (published: Int, acknowledged: Int, delivering: Int, caughtUp: Int) {
        var sums = (published: 0, acknowledged: 0, delivering: 0, caughtUp: 0)
        for answer in try ask("totals") {
            sums.published += Int(answer["published"]?.int64Value ?? 0)
            sums.acknowledged += Int(answer["acknowledged"]?.int64Value ?? 0)
            sums.delivering += Int(answer["delivering"]?.int64Value ?? 0)
            sums.caughtUp += Int(answer["caught_up"]?.int64Value ?? 0)
        }
        return sums
    }

    /// The next answer line of every worker (lines without the prefix,
    /// should a library print, are skipped).
    func readAll() throws -> [JSONValue] {
        var answers: [JSONValue] = []
        for index in workers.indices {
            while true {
                if let newline = workers[index].buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(workers[index].buffer[..<newline])
                    workers[index].buffer.removeSubrange(...newline)
                    let prefix = Array("@fleet ".utf8)
                    guard line.starts(with: prefix) else { continue }
                    answers.append(try JSONValue.parse(Array(line.dropFirst(prefix.count)), limits: .init(maxBytes: 64 << 20, maxDepth: 8)))
                    break
                }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let n = chunk.withUnsafeMutableBytes { read(workers[index].answers, $0.baseAddress, $0.count) }
                guard n > 0 else { throw BenchError("fleet worker pid \(workers[index].pid) ended without answering") }
                workers[index].buffer += chunk[..<n]
            }
        }
        return answers
    }

    /// Ends every worker: end of input, then SIGTERM if it lingers.
    func stop() {
        for worker in workers { close(worker.commands) }
        for worker in workers {
            var status: Int32 = 0
            for _ in 0..<100 where waitpid(worker.pid, &status, WNOHANG) == 0 { usleep(100_000) }
            if waitpid(worker.pid, &status, WNOHANG) == 0 {
                kill(worker.pid, SIGTERM)
                waitpid(worker.pid, &status, 0)
            }
            close(worker.answers)
        }
        workers = []
    }
}

private func readLink(_ path: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { throw BenchError("readlink \(path) failed") }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func hubStatus(_ pilot: String, _ directory: String) -> JSONValue? {
    guard let text = try? captureOutput([pilot, "status", "--json", "--state-dir", directory + "/hub"]) else { return nil }
    return try? JSONValue.parse(Array(text.utf8), limits: .init(maxBytes: 4 << 20, maxDepth: 32))
}

private func waitForFile(_ path: String, what: String) async throws -> String {
    for _ in 0..<300 {
        if let text = try? LocalFile.readText(path, maxBytes: 200), let line = text.split(separator: "\n").first { return String(line) }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError("no \(what) in \(path) after 30 s")
}

private func waitUntil(seconds: Double, _ what: String, _ condition: () -> Bool) async throws {
    let began = nowSeconds()
    while !condition() {
        guard nowSeconds() - began < seconds else { throw BenchError("waited \(Int(seconds)) s for \(what)") }
        try await Task.sleep(for: .milliseconds(200))
    }
}

/// A line on stdout at once, also when stdout is a file (print's buffer
/// would hold a long run's progress until its end).
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        guard n > 0 else { return }
        bytes = bytes.dropFirst(n)
    }
}
