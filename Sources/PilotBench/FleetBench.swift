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

func runFleetBench(_ arguments: FleetArguments) async throws {
    raiseOpenFileLimit()
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    // Per node: a UDP socket, a registry connection, a control socket, a spool (SQLite: db and WAL).
    guard Int(limit.rlim_cur) > arguments.nodes * 6 + 100 else {
        throw BenchError("\(arguments.nodes) nodes need about \(arguments.nodes * 6) open files; the limit is \(limit.rlim_cur) (ulimit -n)")
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
    let hub = Child(name: "hub", pid: try spawn([
        arguments.pilot, "aggregator", "--state-dir", directory + "/hub", "--tunnel-listen", "127.0.0.1:0", "--http", "off",
        "--no-metrics", "--no-default-rules", "--table-interval", "0", "--log-level", "error",
    ]))
    defer { hub.stop() }
    try await waitUntil(seconds: 30, "the hub to register") { hubStatus(arguments.pilot, directory)?["registered"] == .bool(true) }
    let hubBaseRSS = hub.rss
    print("fleet: \(arguments.nodes) nodes, one collection every \(fixed(arguments.interval, 0)) s; registry pid \(registry.pid), hub pid \(hub.pid); state in \(directory)")

    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    let pool = NIOThreadPool(numberOfThreads: 2)
    pool.start()
    let logger = { var logger = Logger(label: "fleet"); logger.logLevel = .critical; return logger }()
    let registryEndpoint = try Endpoint(parsing: registryAddress)

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
                                                               interval: arguments.interval, loop: group.next(), pool: pool, logger: logger)) }
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
    for (reason, count) in failures { print("  \(count) nodes did not start: \(reason)") }
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
    try await Task.sleep(for: .seconds(window))
    let wall = nowSeconds() - wall0
    let hubCPU = (hub.cpu - hubCPU0) / wall * 100, registryCPU = (registry.cpu - registryCPU0) / wall * 100
    let hubRSS = hub.rss

    // Stop collecting, let every spool drain, and count.
    for member in members { await member.metrics.stop() }
    let drainBegan = nowSeconds()
    spools = await spoolTotals(members)
    while spools.published > spools.acknowledged, nowSeconds() - drainBegan < 60 {
        try await Task.sleep(for: .seconds(1))
        spools = await spoolTotals(members)
    }
    let stored = hubStatus(arguments.pilot, directory)?["events"]?["hub"]?["stored"]?.int64Value ?? -1
    let lost = spools.published - spools.acknowledged

    print("")
    print("fleet benchmark (\(members.count) nodes, measured over \(fixed(wall, 0)) s = \(arguments.cycles) cycles of \(fixed(arguments.interval, 0)) s)")
    print("  all nodes delivering after   \(fixed(joinSeconds, 1)) s")
    print("  hub CPU                      \(fixed(hubCPU, 1)) % of one core; aim at 10,000 nodes < 15 %")
    print("  hub RSS, peak                \(fixed(Double(hub.peakRSS) / 1024, 1)) MB (now \(fixed(Double(hubRSS) / 1024, 1)) MB, \(fixed(Double(hubBaseRSS) / 1024, 1)) MB before the fleet); aim < 256 MB")
    print("  hub memory per node          \(fixed(Double(hubRSS - hubBaseRSS) / Double(max(1, members.count)), 1)) kB")
    print("  registry CPU                 \(fixed(registryCPU, 2)) % of one core; aim < 5 %")
    print("  registry RSS, peak           \(fixed(Double(registry.peakRSS) / 1024, 1)) MB; aim < 64 MB")
    print("  messages published           \(spools.published), acknowledged by the hub \(spools.acknowledged), stored at the hub \(stored)")
    print("  messages lost                \(lost) (must be 0)")

    for member in members { await member.node.shutdown() }
    try? await pool.shutdownGracefully()
    try? await group.shutdownGracefully()
    if members.count < arguments.nodes { throw BenchError("\(arguments.nodes - members.count) of \(arguments.nodes) nodes did not start") }
    if lost != 0 || Int64(spools.published) != stored { throw BenchError("\(lost) messages not acknowledged, \(spools.published) published against \(stored) stored") }
}

private func startMember(_ index: Int, directory: String, registry: Endpoint, token: String, interval: Double,
                         loop: any EventLoop, pool: NIOThreadPool, logger: Logger) async throws -> FleetMember {
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
    node.attach(metrics)
    try await node.start()
    let began = nowSeconds()
    while await node.registry?.currentStatus().registered != true {
        guard nowSeconds() - began < 60 else { throw BenchError("not registered after 60 s: \(await node.registry?.currentStatus().lastError ?? "?")") }
        try await Task.sleep(for: .milliseconds(100))
    }
    let answer = await node.request("handshake", JSONObject([("host", .string("hub-01")), ("why", .string("fleet"))]))
    guard answer["ok"] == .bool(true) else { throw BenchError("handshake: \(answer["error"]?.stringValue ?? "refused")") }
    return FleetMember(node: node, metrics: metrics)
}

/// Sums over every node's spool for the hub.
private func spoolTotals(_ members: [FleetMember]) async -> (published: Int, acknowledged: Int, delivering: Int) {
    var published = 0, acknowledged = 0, delivering = 0
    for member in members {
        guard let status = await member.node.events?.status(), case .array(let spools)? = status["spools"], let spool = spools.first else { continue }
        let sent = Int(spool["published"]?.int64Value ?? 0), acked = Int(spool["acknowledged"]?.int64Value ?? 0)
        published += sent
        acknowledged += acked
        if acked > 0 { delivering += 1 }
    }
    return (published, acknowledged, delivering)
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
