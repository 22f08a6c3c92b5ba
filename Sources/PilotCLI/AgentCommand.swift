internal import ArgumentParser
internal import PilotCore
internal import PilotRegistry
internal import PilotRoles
internal import PilotNode
internal import Logging
internal import PilotAgent
internal import PilotCrypto
internal import PilotTransport

/// The options of every node daemon (`pilot agent`, `pilot aggregator`):
/// the node's settings, its tunnels, its broker and spool, its metrics.
/// `--metric-override FIELD=NUMBER` values (the agent's, and pilot up's).
func parseMetricOverrides(_ texts: [String]) throws -> [String: Double] {
    var result: [String: Double] = [:]
    for text in texts {
        let parts = text.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty, let value = Double(parts[1]), value.isFinite else {
            throw ValidationError("--metric-override '\(text)': use FIELD=NUMBER, e.g. disk_pct=97")
        }
        result[String(parts[0])] = value
    }
    return result
}

struct NodeDaemonOptions: ParsableArguments {
    @OptionGroup var settings: NodeSettings

    @Option(name: .customLong("tunnel-listen"), help: ArgumentHelp("The UDP socket for tunnels (port 0 picks one).", valueName: "host:port"))
    var tunnelListen = "0.0.0.0:0"

    @Option(name: .customLong("advertise"), help: ArgumentHelp("An endpoint peers should try, instead of this host's interface addresses (repeatable).", valueName: "host:port"))
    var advertise: [String] = []

    @Option(name: .customLong("max-peers"), help: ArgumentHelp(
        "Tunnel peers this node holds at most (only keys it knows get one, and idle ones are forgotten); stream connections too.",
        valueName: "n"))
    var maxPeers = 100_000

    @Option(help: ArgumentHelp("Time between keepalives to the registry (e.g. 30s).", valueName: "duration"))
    var keepalive = Seconds(30)

    @Option(name: .customLong("max-payload-bytes"), help: ArgumentHelp("Largest event payload this node's broker accepts.", valueName: "n"))
    var maxPayloadBytes = 64 * 1024

    @Option(name: .customLong("event-retention-size"), help: ArgumentHelp("Payload megabytes the broker keeps on disk for durable subscribers.", valueName: "MB"))
    var eventRetentionSize = 512

    @Option(name: .customLong("event-retention-age"), help: ArgumentHelp("How long the broker keeps messages for durable subscribers (e.g. 90m, 24h, 7d).", valueName: "duration"))
    var eventRetentionAge = "7d"

    @Option(name: .customLong("spool-size"), help: ArgumentHelp("Messages this node's spool holds at most while the hub is away.", valueName: "n"))
    var spoolSize = 1_000_000

    @Option(help: ArgumentHelp("Time between collections (at least 1 s), e.g. 30s or 2m.", valueName: "duration"))
    var interval = Seconds(30)

    @Flag(name: .customLong("no-metrics"), help: "Collect no metrics and run no checks: a node that only relays, brokers or subscribes.")
    var noMetrics = false

    @Option(name: .customLong("check"), help: ArgumentHelp(
        "A service check (repeatable): http:NAME=URL, tcp:NAME=HOST:PORT, process:NAME=PROGRAM[,min=N], command:NAME=PLUGIN ARGS, postgres:NAME=CONNINFO, disk-latency:NAME=DIR.",
        valueName: "kind:name=target"))
    var checks: [String] = []

    @Option(name: .customLong("metric-override"), help: ArgumentHelp(
        "Report FIELD as VALUE whatever the host says (repeatable), to try alert rules: disk_pct=97.", valueName: "field=value"))
    var metricOverrides: [String] = []

    @Option(name: .customLong("check-timeout"), help: ArgumentHelp("Default timeout of a check (e.g. 5s).", valueName: "duration"))
    var checkTimeout = Seconds(5)

    @Option(help: ArgumentHelp("A config file of one flag a line (default: STATE/config).", valueName: "file"))
    var config: String?

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        _ = try parseEndpoint(tunnelListen, flag: "--tunnel-listen", listening: true)
        for endpoint in advertise { _ = try parseEndpoint(endpoint, flag: "--advertise") }
        guard (16...10_000_000).contains(maxPeers) else { throw ValidationError("--max-peers must be between 16 and 10000000") }
        guard (1...3600).contains(keepalive.value) else { throw ValidationError("--keepalive must be between 1 and 3600 seconds") }
        guard (2...(16 << 20)).contains(maxPayloadBytes) else { throw ValidationError("--max-payload-bytes must be between 2 and 16777216") }
        guard (1...1_048_576).contains(eventRetentionSize) else { throw ValidationError("--event-retention-size must be between 1 and 1048576 MB") }
        _ = try parseDuration(eventRetentionAge, flag: "--event-retention-age")
        guard (1...100_000_000).contains(spoolSize) else { throw ValidationError("--spool-size must be between 1 and 100000000 messages") }
        guard interval.value >= 1, interval.value <= 86_400 else { throw ValidationError("--interval must be between 1 s and 1 day") }
        if noMetrics && !checks.isEmpty { throw ValidationError("--no-metrics runs no checks: drop it or the --check lines") }
        guard checkTimeout.value > 0, checkTimeout.value <= 600 else { throw ValidationError("--check-timeout must be between 0 and 600 seconds") }
        _ = try overrides()
    }

    /// The checks, each bad one named with the config line it came from.
    func checkSpecs() throws -> [CheckSpec] {
        var specs: [CheckSpec] = []
        for text in checks {
            do { specs.append(try CheckSpec.parse(text, defaultTimeoutMilliseconds: Int(checkTimeout.milliseconds))) } catch {
                let place = configLocation(flag: "--check", value: text).map { "\($0): " } ?? "--check: "
                throw CLIError(place + "\(error)", exitCode: ExitStatus.usage)
            }
            guard !specs.dropLast().contains(where: { $0.name == specs.last!.name }) else {
                throw CLIError("--check: two checks are named '\(specs.last!.name)'", exitCode: ExitStatus.usage)
            }
        }
        return specs
    }

    /// `FILE:LINE` of a flag's value in the config file, if it came from there.
    func configLocation(flag: String, value: String) -> String? {
        let path = config ?? state.resolved + "/" + StateDirectory.configFile
        guard let text = try? LocalFile.readText(path, maxBytes: ConfigFile.maxBytes), let file = try? ConfigFile(parsing: text, path: path),
              let entry = file.entries.first(where: { $0.flag == flag && $0.value == value }) else { return nil }
        return "\(path):\(entry.line)"
    }

    var hostname: String { settings.hostname ?? ProcessEnvironment.hostname }

    func overrides() throws -> [String: Double] { try parseMetricOverrides(metricOverrides) }

    /// The node's options from the flags and config lines.
    func nodeOptions() throws -> (Node.Options, SigningKey) {
        let directory = state.resolved
        let identity = try loadIdentity(stateDirectory: directory)
        var options = Node.Options(
            stateDirectory: directory, configPath: config ?? directory + "/" + StateDirectory.configFile,
            hostname: settings.hostname ?? ProcessEnvironment.hostname)
        options.registry = try settings.registry.map { try parseEndpoint($0, flag: "--registry") }
        options.registryKey = try settings.registryKey.map { try parsePublicKey($0, flag: "--registry-key") }
        // A token in the config file (0600) is not in ps: no warning for it.
        let fromConfig = settings.joinToken.map { configLocation(flag: "--join-token", value: $0) != nil } ?? false
        options.joinToken = try JoinToken.resolve(settings.joinToken, warn: fromConfig ? { _ in } : { Console.current.err($0) })
        options.tags = try Tags.validate(settings.tags)
        options.keepaliveSeconds = keepalive.wholeSeconds
        options.tunnelListen = try parseEndpoint(tunnelListen, flag: "--tunnel-listen", listening: true)
        options.advertise = try advertise.map { try parseEndpoint($0, flag: "--advertise") }
        options.maxPeers = maxPeers
        options.beacon = try settings.beacon.map { try parseEndpoint($0, flag: "--beacon") }
        options.hub = settings.hub
        options.events.limits.maxPayloadBytes = maxPayloadBytes
        options.events.retention.maxBytes = eventRetentionSize << 20
        options.events.retention.maxAgeSeconds = try parseDuration(eventRetentionAge, flag: "--event-retention-age")
        options.events.spool.maxMessages = spoolSize
        return (options, identity)
    }

    /// The agent's metrics role, unless --no-metrics.
    func metrics(specs: [CheckSpec]) throws -> AgentMetrics? {
        guard !noMetrics else { return nil }
        var metrics = MetricsLoop.Options(host: hostname)
        metrics.intervalSeconds = interval.value
        metrics.checks = specs
        metrics.overrides = try overrides()
        return AgentMetrics(options: metrics)
    }

    /// Runs a node with `roles` (and the agent's metrics, last) as a daemon:
    /// started, then stopped gracefully on SIGTERM or SIGINT.
    func runNode(_ options: Node.Options, identity: SigningKey, roles: [any NodeRole], logger: Logger, what: String,
                 started: () -> Void = {}) async throws {
        let metrics = try metrics(specs: checkSpecs())
        try await Daemon.run(logger: logger) {
            let node = Node(options: options, identity: identity, logger: logger)
            for role in roles { node.attach(role) }
            if let metrics { node.attach(metrics) }
            do { try await node.start() } catch let error as NodeError {
                throw CLIError("cannot start \(error)") // names the role
            } catch {
                throw CLIError("cannot start \(what): \(error)")
            }
            started()
            return node.services
        }
    }
}

struct AgentCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "agent")

    @OptionGroup var node: NodeDaemonOptions
    @Flag(help: "Run one collection and the checks, then exit (with --print).") var once = false
    @Flag(help: "Print the messages of one cycle as JSON lines instead of publishing them; needs no network.") var print = false

    func validate() throws {
        guard once == print else { throw ValidationError(once ? "--once needs --print" : "--print needs --once") }
    }

    func run() async throws {
        let specs = try node.checkSpecs()
        if once {
            for message in await MetricsLoop.printOnce(host: node.hostname, checks: specs) {
                Console.current.out(#"{"topic":"\#(message.topic)","payload":\#(message.json)}"#)
            }
            return
        }
        let (options, identity) = try node.nodeOptions()
        try await node.runNode(options, identity: identity, roles: [], logger: node.log.logger("pilot.agent"), what: "the node") {
            // Once registered, tunnelled and a few cycles in, the code that
            // only start-up ran stops counting in the agent's memory.
            Task {
                try? await Task.sleep(for: .seconds(AgentCommand.startupSeconds))
                releaseStartupCode()
            }
        }
    }

    static let startupSeconds = 15
}
