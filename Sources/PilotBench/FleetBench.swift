// pilot-bench fleet: N real overlay nodes in this process against a real
// registry and a real hub (`pilot registry`, `pilot aggregator`: child
// processes, measured from /proc).
//
// Each simulated node is a `Node` with the agent's metrics role, as `pilot
// agent` runs it: its own Ed25519 identity, registry session, tunnel socket
// on its own loopback address (127.10.0.0/16 and up), handshake with the hub
// by the fleet's join token, event forwarder and spool, and the hardening
// defaults. What the nodes share, and a fleet does not: this process's event
// loops (one per core) and two threads for reading /proc, so every node
// reports this host's numbers under its own name; their spools live in one
// directory (tmpfs when /dev/shm is there, so 10,000 fsyncs a cycle measure
// the code, not the disk).
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
    /// Nodes starting at once.
    var startConcurrency = 64

    init(_ argv: [String]) throws {
        try eachOption(argv) { flag, value in
            switch flag {
            case "--pilot": pilot = value
            case "--nodes": nodes = Int(value) ?? 0
            case "--interval": interval = Double(value) ?? 0
            case "--cycles": cycles = Int(value) ?? 0
            case "--start-concurrency": startConcurrency = Int(value) ?? 0
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard (1...60_000).contains(nodes) else { throw BenchError("--nodes must be between 1 and 60000") }
        guard interval >= 1, cycles >= 1, startConcurrency >= 1 else { throw BenchError("--interval (≥ 1 s), --cycles and --start-concurrency must be positive") }
    }
}

/// A node's loopback address: one per node, as hosts of a fleet have.
func fleetAddress(_ index: Int) -> String {
    "127.\(10 + index / 62_500).\(index / 250 % 250 + 1).\(index % 250 + 1)"
}

/// One simulated host: the node and its metrics role.
struct FleetMember: Sendable {
    let node: Node
    let metrics: AgentMetrics
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

/// Each cycle's delay from spooling to the hub's acknowledgement, kept
/// while `measuring` (from every node's loop).
final class DelayRecorder: Sendable {
    private let state = Mutex<(measuring: Bool, delays: [Double], unconfirmed: Int)>((false, [], 0))
    func record(_ delay: Double?) {
        state.withLock { state in
            guard state.measuring else { return }
            if let delay { state.delays.append(delay) } else { state.unconfirmed += 1 }
        }
    }
    func measure(_ on: Bool) { state.withLock { $0.measuring = on } }
    func take() -> (delays: [Double], unconfirmed: Int) {
        state.withLock { state in
            defer { state.delays = []; state.unconfirmed = 0 }
            return (state.delays.sorted(), state.unconfirmed)
        }
    }
}

func runFleetBench(_ arguments: FleetArguments) async throws {
    // Per node: a UDP socket, a registry connection, a control socket, and
    // two SQLite databases (the broker's log and the spool: file, WAL, shm).
    let needed = arguments.nodes * 10 + 1_000
    raiseOpenFileLimit()
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if Int(limit.rlim_cur) < needed { // root may raise the hard limit too (the children inherit it)
        var raised = rlimit(rlim_cur: rlim_t(needed), rlim_max: max(limit.rlim_max, rlim_t(needed)))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    guard Int(limit.rlim_cur) >= needed else {
        throw BenchError("\(arguments.nodes) nodes need about \(needed) open files; the limit is \(limit.rlim_cur) (ulimit -n, or run as root)")
    }
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
    print("fleet: \(arguments.nodes) nodes, one collection every \(fixed(arguments.interval, 0)) s; registry pid \(registry.pid), hub pid \(hub.pid); state in \(directory)")

    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    let pool = NIOThreadPool(numberOfThreads: 2)
    pool.start()
    let logger = { var logger = Logger(label: "fleet"); logger.logLevel = .critical; return logger }()
    let registryEndpoint = try Endpoint(parsing: registryAddress)
    let recorder = DelayRecorder()

    // Start everyone, a bounded number at a time, as a fleet booting would.
    let startBegan = nowSeconds()
    var members: [FleetMember] = []
    members.reserveCapacity(arguments.nodes)
    var failures: [String: Int] = [:]
    for batch in stride(from: 0, to: arguments.nodes, by: arguments.startConcurrency) {
        let started = await withTaskGroup(of: Result<FleetMember, BenchError>.self) { tasks in
            for index in batch..<min(batch + arguments.startConcurrency, arguments.nodes) {
                tasks.addTask {
                    do { return .success(try await startMember(index, directory: directory, registry: registryEndpoint, token: token,
                                                               interval: arguments.interval, loop: group.next(), pool: pool, logger: logger,
                                                               recorder: recorder)) }
                    catch { return .failure(BenchError("\(error)")) }
                }
            }
            var results: [Result<FleetMember, BenchError>] = []
            for await result in tasks { results.append(result) }
            return results
        }
        for result in started {
            switch result {
            case .success(let member): members.append(member)
            case .failure(let error): failures[error.description, default: 0] += 1
            }
        }
    }
    for (reason, count) in failures.sorted(by: { $0.value > $1.value }).prefix(10) { print("  \(count) nodes did not start: \(reason)") }
    guard !members.isEmpty else { throw BenchError("no node started") }
    print("started \(members.count) nodes in \(fixed(nowSeconds() - startBegan, 1)) s")

    // Joined: the hub has acknowledged each node's first cycle.
    let joinDeadline = 120.0 + Double(arguments.nodes) / 50
    var spools = await spoolTotals(members)
    while spools.delivering < members.count, nowSeconds() - startBegan < joinDeadline {
        try await Task.sleep(for: .seconds(2))
        spools = await spoolTotals(members)
    }
    let joinSeconds = nowSeconds() - startBegan
    print("\(spools.delivering) of \(members.count) nodes delivering to the hub after \(fixed(joinSeconds, 1)) s")

    // The steady window: whole cycles, everyone publishing.
    let window = Double(arguments.cycles) * arguments.interval
    let hubCPU0 = hub.cpu, registryCPU0 = registry.cpu, wall0 = nowSeconds()
    recorder.measure(true)
    try await Task.sleep(for: .seconds(window))
    recorder.measure(false)
    let wall = nowSeconds() - wall0
    let hubCPU = (hub.cpu - hubCPU0) / wall * 100, registryCPU = (registry.cpu - registryCPU0) / wall * 100
    let hubRSS = hub.rss, hubPeakRSS = hub.peakRSS
    let (delays, unconfirmed) = recorder.take()
    print("steady window done: hub CPU \(fixed(hubCPU, 1)) %, \(delays.count) cycles acknowledged")

    // The hub is killed with the fleet running, and comes back on its port:
    // every node reconnects and delivers what it spooled meanwhile. A node
    // is back once the new hub acknowledged a message it published after
    // the kill (so this includes waiting for its next cycle, at most one
    // interval), and with it everything before.
    let atKill = await spoolTotals(members)
    let killed = nowSeconds()
    kill(hub.pid, SIGKILL)
    var status: Int32 = 0
    waitpid(hub.pid, &status, 0)
    hub = try startHub(port: Int(hubPort))
    var recovered = Double.nan
    while nowSeconds() - killed < 300 {
        try await Task.sleep(for: .seconds(1))
        let now = await spoolTotals(members, caughtUpTo: atKill.perNode.map { $0 + 1 })
        if now.caughtUp == members.count { recovered = nowSeconds() - killed; break }
    }
    let recoveryCPU = hub.cpu
    print("hub killed and restarted: every node back and drained after \(fixed(recovered, 1)) s (hub CPU \(fixed(recoveryCPU, 1)) s meanwhile)")

    // Stop collecting, let every spool drain, and count.
    for member in members { await member.metrics.stop() }
    let drainBegan = nowSeconds()
    spools = await spoolTotals(members)
    while spools.published > spools.acknowledged, nowSeconds() - drainBegan < 60 {
        try await Task.sleep(for: .seconds(1))
        spools = await spoolTotals(members)
    }
    let inLog = hubStatus(arguments.pilot, directory)?["events"]?["hub"]?["log_messages"]?.int64Value ?? -1
    let lost = spools.published - spools.acknowledged
    if lost > 0 { print("nodes with messages the hub has not acknowledged, by state:"); await printStuck(members) }

    print("")
    print("fleet benchmark (\(members.count) nodes, measured over \(fixed(wall, 0)) s = \(arguments.cycles) cycles of \(fixed(arguments.interval, 0)) s)")
    print("  all nodes delivering after   \(fixed(joinSeconds, 1)) s from the first start")
    print("  hub CPU                      \(fixed(hubCPU, 1)) % of one core; aim at 10,000 nodes < 15 %")
    print("  hub RSS, peak                \(fixed(Double(hubPeakRSS) / 1024, 1)) MB (\(fixed(Double(hubRSS) / 1024, 1)) MB at the end of the window, \(fixed(Double(hubBaseRSS) / 1024, 1)) MB before the fleet); aim < 256 MB")
    print("  hub memory per node          \(fixed(Double(hubRSS - hubBaseRSS) / Double(max(1, members.count)), 1)) kB")
    print("  spool to hub acknowledgement p50 \(fixed(percentile(delays, 0.5) * 1000, 1)) ms, p99 \(fixed(percentile(delays, 0.99) * 1000, 1)) ms (\(delays.count) cycles, \(unconfirmed) not acknowledged within 5 min)")
    print("  registry CPU                 \(fixed(registryCPU, 2)) % of one core; aim < 5 %")
    print("  registry RSS, peak           \(fixed(Double(registry.peakRSS) / 1024, 1)) MB; aim < 64 MB")
    print("  hub kill -9: back and drained \(fixed(recovered, 1)) s (including each node's next cycle, ≤ \(fixed(arguments.interval, 0)) s); aim < 60 s")
    print("  messages published           \(spools.published), acknowledged by the hub \(spools.acknowledged), in the hub's log \(inLog)")
    print("  messages lost                \(lost) (must be 0)")

    for member in members { await member.node.shutdown() }
    try? await pool.shutdownGracefully()
    try? await group.shutdownGracefully()
    if members.count < arguments.nodes { throw BenchError("\(arguments.nodes - members.count) of \(arguments.nodes) nodes did not start") }
    if lost != 0 || Int64(spools.published) != inLog { throw BenchError("\(lost) messages not acknowledged, \(spools.published) published against \(inLog) in the hub's log") }
    if !recovered.isFinite { throw BenchError("the fleet had not recovered 300 s after the hub's kill -9") }
}

private func startMember(_ index: Int, directory: String, registry: Endpoint, token: String, interval: Double,
                         loop: any EventLoop, pool: NIOThreadPool, logger: Logger, recorder: DelayRecorder) async throws -> FleetMember {
    let host = "sim-" + String(repeating: "0", count: max(0, 5 - String(index).count)) + String(index)
    let state = directory + "/nodes/" + host
    try LocalFile.makeDirectory(state, mode: 0o700)
    var options = Node.Options(stateDirectory: state, configPath: state + "/config", hostname: host)
    options.registry = registry
    options.registrySource = fleetAddress(index)
    options.joinToken = token
    options.tags = ["sim", "site-\(index % 3)"]
    options.tunnelListen = Endpoint(host: fleetAddress(index), port: 0)
    options.hub = "hub-01"
    let node = Node(options: options, identity: SigningKey.generate(), logger: logger, loop: loop)
    var metricsOptions = MetricsLoop.Options(host: host)
    metricsOptions.intervalSeconds = interval
    let metrics = AgentMetrics(options: metricsOptions, pool: pool)
    metrics.onConfirmed = { recorder.record($0) }
    node.attach(metrics)
    do { try await startAndJoin(node) } catch {
        await node.shutdown()
        throw error
    }
    return FleetMember(node: node, metrics: metrics)
}

private func startAndJoin(_ node: Node) async throws {
    try await node.start()
    let began = nowSeconds()
    while await node.registry?.currentStatus().registered != true {
        guard nowSeconds() - began < 60 else { throw BenchError("not registered after 60 s: \(await node.registry?.currentStatus().lastError ?? "?")") }
        try await Task.sleep(for: .milliseconds(100))
    }
    let answer = await node.request("handshake", JSONObject([("host", .string("hub-01")), ("why", .string("fleet"))]))
    guard answer["ok"] == .bool(true) else { throw BenchError("handshake: \(answer["error"]?.stringValue ?? "refused")") }
}

/// Sums over every node's spool for the hub; with `caughtUpTo`, also how
/// many nodes have had acknowledged what they had published by then.
private func spoolTotals(_ members: [FleetMember], caughtUpTo: [Int]? = nil)
    async -> (published: Int, acknowledged: Int, delivering: Int, caughtUp: Int, perNode: [Int]) {
    var published = 0, acknowledged = 0, delivering = 0, caughtUp = 0
    var perNode: [Int] = []
    perNode.reserveCapacity(members.count)
    for (index, member) in members.enumerated() {
        var sent = 0, acked = 0
        if let status = await member.node.events?.status(), case .array(let spools)? = status["spools"], let spool = spools.first {
            sent = Int(spool["published"]?.int64Value ?? 0)
            acked = Int(spool["acknowledged"]?.int64Value ?? 0)
        }
        published += sent
        acknowledged += acked
        perNode.append(sent)
        if acked > 0 { delivering += 1 }
        if let caughtUpTo, acked >= caughtUpTo[index] { caughtUp += 1 }
    }
    return (published, acknowledged, delivering, caughtUp, perNode)
}

/// Why spools did not drain: the nodes that still hold messages, by
/// connection state and last error.
private func printStuck(_ members: [FleetMember]) async {
    var states: [String: Int] = [:]
    for member in members {
        guard let status = await member.node.events?.status(), case .array(let spools)? = status["spools"], let spool = spools.first,
              (spool["spooled"]?.int64Value ?? 0) > 0 else { continue }
        let state = "connected \(spool["connected"] == .bool(true)), retransmissions \((spool["retransmissions"]?.int64Value ?? 0) > 0 ? ">0" : "0"), last error: \(spool["last_error"]?.stringValue ?? "none")"
        states[state, default: 0] += 1
    }
    for (state, count) in states.sorted(by: { $0.value > $1.value }).prefix(10) { print("  \(count) × \(state)") }
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
