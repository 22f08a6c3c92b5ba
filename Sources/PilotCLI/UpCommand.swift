#if canImport(Glibc)
internal import Glibc
#endif
internal import ArgumentParser
internal import PilotAgent
internal import PilotCore
internal import PilotCrypto
internal import PilotRoles
internal import Logging
internal import PilotNode
internal import ServiceLifecycle

/// `pilot up`: the embedded default a newcomer starts with. A registry, a
/// beacon, the aggregator (the hub), the store and this host's agent in one
/// process on loopback, with state in a temporary directory unless one is given.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "up")

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where to keep state (default: a new temporary directory).", valueName: "dir"))
    var stateDirectory: String?

    @Option(help: ArgumentHelp("The fleet API and /metrics (default 127.0.0.1:9190, or a free port if that one is taken).", valueName: "host:port"))
    var http: String?

    @Option(help: ArgumentHelp("Time between collections (e.g. 10s).", valueName: "duration"))
    var interval = Seconds(10)

    @Option(name: .customLong("table-interval"), help: ArgumentHelp("Time between fleet tables on stdout (e.g. 20s).", valueName: "duration"))
    var tableInterval = Seconds(20)

    @Option(name: .customLong("for"), help: ArgumentHelp("Stop after this long (default: run until interrupted).", valueName: "duration"))
    var duration: Seconds?

    @Option(name: .customLong("check"), help: ArgumentHelp("A service check for this host (repeatable), as for pilot agent.", valueName: "kind:name=target"))
    var checks: [String] = []

    @Option(name: .customLong("metric-override"), help: ArgumentHelp(
        "Report FIELD as VALUE instead of what this host measures (repeatable), e.g. disk_pct=97 to see an alert fire.", valueName: "field=value"))
    var metricOverrides: [String] = []

    @OptionGroup(title: "Alert router (runs on the hub when a --receiver is given)") var router: RouterFlags

    @OptionGroup(title: "Dashboard access (TLS and tokens; required beyond loopback)") var httpAccess: HTTPFlags
    @OptionGroup var admin: AdminTokenFlag

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "notice" // quieter than the roles: the banner and the table are what a newcomer reads

    var log: LogOptions {
        var options = LogOptions()
        options.level = logLevel
        return options
    }

    func validate() throws {
        try log.validate()
        if let http { try httpAccess.check(try parseEndpoint(http, flag: "--http", listening: true), stateDirectory: nil, makesCertificate: true) }
        guard interval.value >= 1, interval.value <= 3600 else { throw ValidationError("--interval must be between 1 and 3600 seconds") }
        guard (1...86_400).contains(tableInterval.value) else { throw ValidationError("--table-interval must be between 1 and 86400 seconds") }
        if let duration, !(duration.value > 0) { throw ValidationError("--for must be more than 0 seconds") }
        _ = try overrides()
    }

    func overrides() throws -> [String: Double] { try parseMetricOverrides(metricOverrides) }

    func run() async throws {
        let specs = try checks.map { text in
            do { return try CheckSpec.parse(text) } catch { throw CLIError("--check: \(error)", exitCode: ExitStatus.usage) }
        }
        let directory = try stateDirectory ?? Self.temporaryDirectory()
        let logger = log.logger("pilot.up")

        try await Daemon.run(logger: logger, for: duration.map { .milliseconds($0.milliseconds) }) {
            try await start(directory: directory, specs: specs, logger: logger)
        }
    }

    /// The registry and the beacon (plain servers), then one node that is the
    /// hub with the aggregator, the store and this host's metrics.
    private func start(directory: String, specs: [CheckSpec], logger: Logger) async throws -> [any Service] {
        var registryOptions = RegistryService.Options(stateDirectory: directory + "/registry")
        registryOptions.listen = Endpoint(host: "127.0.0.1", port: 0)
        registryOptions.http = nil
        let registryKey = try loadOrCreateIdentity(stateDirectory: registryOptions.stateDirectory)
        let registry: RegistryService
        do {
            registry = try RegistryService(options: registryOptions, identity: registryKey, logger: logger)
            try await registry.start()
        } catch {
            throw CLIError("cannot start the registry in \(registryOptions.stateDirectory): \(error)")
        }

        var beaconOptions = BeaconService.Options(stateDirectory: directory + "/beacon")
        beaconOptions.listen = Endpoint(host: "127.0.0.1", port: 0)
        beaconOptions.registryKey = registryKey.publicKey // in process: the key itself, nothing to learn
        try LocalFile.makeDirectory(beaconOptions.stateDirectory, mode: 0o700)
        let beacon = BeaconService(options: beaconOptions, logger: logger)
        do { try await beacon.start() } catch { throw CLIError("cannot start the beacon: \(error)") }

        let hostname = (try? Hostname.validate(ProcessEnvironment.hostname)) ?? "localhost"
        let nodeDirectory = directory + "/node"
        let identity = try loadOrCreateIdentity(stateDirectory: nodeDirectory)
        var options = Node.Options(stateDirectory: nodeDirectory, configPath: nodeDirectory + "/" + StateDirectory.configFile, hostname: hostname)
        options.registry = try Endpoint(parsing: registry.boundAddress)
        options.registryKey = registryKey.publicKey
        options.beacon = try Endpoint(parsing: beacon.boundAddress)
        options.tunnelListen = Endpoint(host: "127.0.0.1", port: 0)
        options.hub = hostname
        options.announcesHub = true
        var metrics = MetricsLoop.Options(host: hostname)
        metrics.intervalSeconds = interval.value
        metrics.checks = specs
        metrics.overrides = try overrides()

        var settings = AggregatorService.Options()
        settings.tableSeconds = tableInterval.wholeSeconds
        settings.engine.hostDownAfter = interval.wholeSeconds * 3
        // The aggregator on the requested address, else on 127.0.0.1:9190, else
        // (that port taken, e.g. by node_exporter) on a free port.
        settings.http = try http.map { try parseEndpoint($0, flag: "--http", listening: true) } ?? Endpoint(host: "127.0.0.1", port: Self.isFree(port: 9190) ? 9190 : 0)
        // Silences from the dashboard need the admin token: one is made in the
        // state directory unless --http-admin-token gives another.
        let adminToken = admin.adminToken == nil ? try HTTPFlags.adminTokenFile(in: nodeDirectory) : nil
        // Beyond loopback without --tls-cert: a certificate of its own, made once there too.
        if let endpoint = settings.http, !HTTPAccess.isLoopback(endpoint.host), httpAccess.tlsCertificate == nil {
            do { _ = try SelfSignedCertificate.ensure(in: nodeDirectory, hostname: hostname) } catch { throw CLIError("HTTPS certificate: \(error)") }
        }
        settings.access = try httpAccess.access(for: settings.http, stateDirectory: nodeDirectory, admin: admin, generatedAdminToken: adminToken?.token)
        var certificate = ""
        if let files = settings.access.tls {
            do { certificate = "\n  certificate \(files.certificate)  (SHA-256 \(try SelfSignedCertificate.fingerprint(ofFile: files.certificate)))" } catch {
                throw CLIError("--tls-cert: \(error)", exitCode: ExitStatus.usage)
            }
        }
        let node = Node(options: options, identity: identity, logger: logger)
        let aggregator: AggregatorService, store: StoreService
        do {
            aggregator = try AggregatorService(options: settings, stateDirectory: nodeDirectory, logger: logger)
            // History on the same node: the store subscribes to its own broker.
            store = try StoreService(stateDirectory: nodeDirectory, http: Endpoint(host: "127.0.0.1", port: Self.isFree(port: 9201) ? 9201 : 0), logger: logger)
        } catch {
            throw CLIError("cannot open the hub's state in \(nodeDirectory): \(error)")
        }
        node.attach(aggregator)
        node.attach(store)
        if router.isConfigured {
            node.attach(try router.service(repeatInterval: settings.engine.repeatInterval, stateDirectory: nodeDirectory, logger: logger) { _, _ in nil })
        }
        node.attach(AgentMetrics(options: metrics))
        do { try await node.start() } catch { throw CLIError("cannot start \(error)") }

        let scheme = settings.access.tls == nil ? "http" : "https"
        Console.current.out("""
            pilot up: everything on loopback, state in \(directory)
              registry    \(registry.boundAddress)
              beacon      \(beacon.boundAddress)
              aggregator  hub '\(hostname)', this host's metrics every \(interval)
              dashboard   \(scheme)://\(aggregator.httpAddress ?? "-")/\(adminToken.map { "  (to set silences there, the admin token in \($0.path))" } ?? "")
              fleet API   \(scheme)://\(aggregator.httpAddress ?? "-")/api/hosts  (and /api/v1/hosts, /api/alerts, /metrics for Prometheus)\(certificate)
              history     http://\(store.httpAddress ?? "-")/api/v1/query_range  (Prometheus's read API, for Grafana)
              alerts to   \(router.isConfigured ? router.receivers.map { $0.split(separator: "=").first.map(String.init) ?? $0 }.joined(separator: ", ") : "nobody yet: add --receiver webhook:NAME=URL (or slack, pagerduty, email, exec)")
              try         pilot subscribe 'metrics/*' --state-dir \(nodeDirectory)
                          pilot alerts --state-dir \(nodeDirectory)
                          pilot query cpu_pct --since 1h --state-dir \(nodeDirectory)
            The fleet table follows every \(tableInterval). Ctrl-C stops it.
            """)
        return [registry, beacon] + node.services
    }

    static func isFree(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/pilot-up-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CLIError("cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

}
