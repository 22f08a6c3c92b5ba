// pilot-bench fleet-worker: one share of `pilot-bench fleet`'s nodes, in a
// process of its own, so that a fleet larger than one process's open-file
// limit (eleven descriptors per node) still runs on one machine. The
// parent starts it with its share (--first, --count) and drives it over
// stdin and stdout, one command and one answer per line (`FleetWorkers`).
//
// Commands: totals, mark (remember each node's published count, so that
// later totals count the nodes caught up past it), measure on|off, delays,
// stop (stop collecting), stuck, shutdown. Each answer is one line of JSON
// after the prefix `@fleet `; end of input shuts the worker down.
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

struct FleetWorkerArguments {
    var registry = ""
    var tokenFile = ""
    var directory = ""
    var first = 0
    var count = 0
    var interval = 30.0
    var startConcurrency = 64

    init(_ argv: [String]) throws {
        try eachOption(argv) { flag, value in
            switch flag {
            case "--registry": registry = value
            case "--token-file": tokenFile = value
            case "--directory": directory = value
            case "--first": first = Int(value) ?? -1
            case "--count": count = Int(value) ?? 0
            case "--interval": interval = Double(value) ?? 0
            case "--start-concurrency": startConcurrency = Int(value) ?? 0
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard !registry.isEmpty, !tokenFile.isEmpty, !directory.isEmpty else { throw BenchError("fleet-worker needs --registry, --token-file and --directory") }
        guard first >= 0, count >= 1, interval >= 1, startConcurrency >= 1 else { throw BenchError("fleet-worker: --first, --count, --interval and --start-concurrency must be positive") }
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
            return (state.delays, state.unconfirmed)
        }
    }
}

func runFleetWorker(_ arguments: FleetWorkerArguments) async throws {
    raiseOpenFileLimit()
    let token = try LocalFile.readText(arguments.tokenFile, maxBytes: 200).split(separator: "\n").first.map(String.init) ?? ""
    let registry = try Endpoint(parsing: arguments.registry)
    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    let pool = NIOThreadPool(numberOfThreads: 2)
    pool.start()
    let input = NIOThreadPool(numberOfThreads: 1) // blocking reads of stdin, off the cooperative pool
    input.start()
    let logger = { var logger = Logger(label: "fleet"); logger.logLevel = .critical; return logger }()
    let recorder = DelayRecorder()

    // Start the share, a bounded number at a time, as a fleet booting would.
    var members: [FleetMember] = []
    members.reserveCapacity(arguments.count)
    var failures: [String: Int] = [:]
    let end = arguments.first + arguments.count
    for batch in stride(from: arguments.first, to: end, by: arguments.startConcurrency) {
        let started = await withTaskGroup(of: Result<FleetMember, BenchError>.self) { tasks in
            for index in batch..<min(batch + arguments.startConcurrency, end) {
                tasks.addTask {
                    do { return .success(try await startMember(index, directory: arguments.directory, registry: registry, token: token,
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
    answer(.object(JSONObject([("started", .number(Double(members.count))),
                               ("failures", .object(JSONObject(failures.map { ($0.key, .number(Double($0.value))) })))])))

    var marks: [Int]? = nil
    commands: while let line = try await input.runIfActive({ readLine() }) {
        switch line {
        case "totals", "mark":
            let totals = await spoolTotals(members, caughtUpTo: marks)
            if line == "mark" { marks = totals.perNode.map { $0 + 1 } }
            answer(.object(JSONObject([("published", .number(Double(totals.published))), ("acknowledged", .number(Double(totals.acknowledged))),
                                       ("delivering", .number(Double(totals.delivering))), ("caught_up", .number(Double(totals.caughtUp)))])))
        case "measure on", "measure off":
            recorder.measure(line == "measure on")
            answer(.object(JSONObject([("ok", .bool(true))])))
        case "delays":
            let (delays, unconfirmed) = recorder.take()
            answer(.object(JSONObject([("delays", .array(delays.map { .number($0) })), ("unconfirmed", .number(Double(unconfirmed)))])))
        case "stop":
            for member in members { await member.metrics.stop() }
            answer(.object(JSONObject([("ok", .bool(true))])))
        case "stuck":
            let states = await stuckStates(members)
            answer(.object(JSONObject(states.map { ($0.key, .number(Double($0.value))) })))
        case "shutdown":
            for member in members { await member.node.shutdown() }
            members = []
            answer(.object(JSONObject([("ok", .bool(true))])))
            break commands
        default:
            answer(.object(JSONObject([("error", .string("unknown command"))])))
        }
    }
    for member in members { await member.node.shutdown() }
    try? await input.shutdownGracefully()
    try? await pool.shutdownGracefully()
    try? await group.shutdownGracefully()
}

/// One answer to the parent, unbuffered (stdout is a pipe).
private func answer(_ value: JSONValue) {
    say("@fleet " + value.description)
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
        if let caughtUpTo, index < caughtUpTo.count, acked >= caughtUpTo[index] { caughtUp += 1 }
    }
    return (published, acknowledged, delivering, caughtUp, perNode)
}

/// Why spools did not drain: the nodes that still hold messages, by
/// connection state and last error.
private func stuckStates(_ members: [FleetMember]) async -> [String: Int] {
    var states: [String: Int] = [:]
    for member in members {
        guard let status = await member.node.events?.status(), case .array(let spools)? = status["spools"], let spool = spools.first,
              (spool["spooled"]?.int64Value ?? 0) > 0 else { continue }
        let state = "connected \(spool["connected"] == .bool(true)), retransmissions \((spool["retransmissions"]?.int64Value ?? 0) > 0 ? ">0" : "0"), last error: \(spool["last_error"]?.stringValue ?? "none")"
        states[state, default: 0] += 1
    }
    return states
}
