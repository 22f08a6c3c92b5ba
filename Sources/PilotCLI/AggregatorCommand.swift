internal import ArgumentParser
internal import PilotAggregator
internal import PilotCore
internal import PilotNode
internal import PilotRoles

struct AggregatorCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "aggregator")

    @OptionGroup var node: NodeDaemonOptions
    @OptionGroup(title: "Alert router (runs on this node when a --receiver is given)") var router: RouterFlags

    @Option(name: .customLong("with"), help: ArgumentHelp(
        "More roles on this node, comma-separated: store (the history), alert-router (needs a --receiver, which alone runs it too).",
        valueName: "roles"))
    var with: [String] = []

    @Option(name: .customLong("store-http"), help: ArgumentHelp("With --with store: where Prometheus's read API of the history answers ('off' for nowhere).", valueName: "host:port"))
    var storeHTTP = "127.0.0.1:9201"

    @OptionGroup(title: "History (with --with store)") var history: HistoryFlags

    @Option(help: ArgumentHelp("Where the dashboard (/), its API (/api/v1/...) and /metrics are served ('off' for nowhere).", valueName: "host:port"))
    var http = "127.0.0.1:9190"

    @OptionGroup(title: "Dashboard access (TLS and tokens; required beyond loopback)") var httpAccess: HTTPFlags
    @OptionGroup var admin: AdminTokenFlag

    @Option(name: .customLong("rule"), help: ArgumentHelp(
        "An alert rule (repeatable), e.g. 'disk_pct > 90 for 2m critical > 95'; it replaces the default rule of its metric.", valueName: "rule"))
    var rules: [String] = []

    @Flag(name: .customLong("no-default-rules"), help: "Only the --rule's, not the defaults (cpu_pct 90/95, mem_pct 85/90, disk_pct 90/95).")
    var noDefaultRules = false

    @Option(name: .customLong("host-down-after"), help: ArgumentHelp("A host silent this long is down (default: 3 intervals, 90s).", valueName: "duration"))
    var hostDownAfter = "90s"

    @Option(name: .customLong("repeat-interval"), help: ArgumentHelp("How often a firing alert is published (and, with a --receiver, notified) again.", valueName: "duration"))
    var repeatInterval = "4h"

    @Option(name: .customLong("stale-after"), help: ArgumentHelp("A firing alert whose series has no sample this long, while its host reports, resolves.", valueName: "duration"))
    var staleAfter = "5m"

    @Option(name: .customLong("table-interval"), help: ArgumentHelp("Time between fleet tables on stdout (0: none).", valueName: "duration"))
    var tableInterval = Seconds(60)

    /// The roles --with names, each once.
    var withRoles: Set<String> {
        Set(with.flatMap { $0.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) } }.filter { !$0.isEmpty })
    }

    func validate() throws {
        for role in withRoles where role != "store" && role != "alert-router" {
            throw ValidationError("--with: unknown role '\(role)'; the aggregator's node can also run store and alert-router")
        }
        if withRoles.contains("alert-router"), !router.isConfigured {
            throw ValidationError("--with alert-router needs a --receiver, e.g. --receiver webhook:ops=https://hooks.example/pilot")
        }
        if !withRoles.contains("store"), history.remoteWrite != nil || history.retention != "30d" || history.rollupRetention != "365d" {
            throw ValidationError("--retention, --rollup-retention and --remote-write need --with store")
        }
        if withRoles.contains("store"), storeHTTP != "off" {
            try httpAccess.check(try parseEndpoint(storeHTTP, flag: "--store-http", listening: true), stateDirectory: node.state.resolved)
        }
        if http != "off" { try httpAccess.check(try parseEndpoint(http, flag: "--http", listening: true), stateDirectory: node.state.resolved) }
        _ = try parseDuration(hostDownAfter, flag: "--host-down-after")
        _ = try parseDuration(repeatInterval, flag: "--repeat-interval")
        _ = try parseDuration(staleAfter, flag: "--stale-after")
        guard (0...86_400).contains(tableInterval.value) else { throw ValidationError("--table-interval must be between 0 and 86400 seconds") }
    }

    func engineRules() throws -> [AlertRule] {
        var custom: [AlertRule] = []
        for text in rules {
            do { custom.append(try AlertRule.parse(text)) } catch {
                let place = node.configLocation(flag: "--rule", value: text).map { "\($0): " } ?? "--rule: "
                throw CLIError(place + "\(error)", exitCode: ExitStatus.usage)
            }
        }
        let defaults = noDefaultRules ? [] : AlertRule.defaults.filter { rule in !custom.contains { $0.metric == rule.metric } }
        return defaults + custom
    }

    func run() async throws {
        var (options, identity) = try node.nodeOptions()
        options.hub = options.hostname // the aggregator is the hub: its own metrics go straight to its broker
        options.announcesHub = true
        var aggregator = AggregatorService.Options()
        aggregator.http = http == "off" ? nil : try parseEndpoint(http, flag: "--http", listening: true)
        aggregator.access = try httpAccess.access(for: aggregator.http, stateDirectory: options.stateDirectory, admin: admin)
        aggregator.engine.rules = try engineRules()
        aggregator.engine.hostDownAfter = try parseDuration(hostDownAfter, flag: "--host-down-after")
        aggregator.engine.repeatInterval = try parseDuration(repeatInterval, flag: "--repeat-interval")
        aggregator.engine.staleAfter = try parseDuration(staleAfter, flag: "--stale-after")
        aggregator.tableSeconds = max(1, tableInterval.wholeSeconds)
        aggregator.printTable = tableInterval.value > 0
        let logger = node.log.logger("pilot.aggregator")
        let service: AggregatorService
        do { service = try AggregatorService(options: aggregator, stateDirectory: options.stateDirectory, logger: logger) } catch {
            throw CLIError("cannot start the aggregator: \(error)")
        }
        var roles: [any NodeRole] = [service]
        if withRoles.contains("store") {
            // History on the hub's own node: the store subscribes to its own broker, as in pilot up.
            let endpoint = storeHTTP == "off" ? nil : try parseEndpoint(storeHTTP, flag: "--store-http", listening: true)
            let access = try httpAccess.access(for: endpoint, stateDirectory: options.stateDirectory)
            roles.append(try history.service(stateDirectory: options.stateDirectory, http: endpoint, access: access, logger: logger))
        }
        if router.isConfigured {
            roles.append(try router.service(repeatInterval: aggregator.engine.repeatInterval, stateDirectory: options.stateDirectory, logger: logger,
                                            locate: node.configLocation))
        }
        try await node.runNode(options, identity: identity, roles: roles, logger: logger, what: "the aggregator") {
            if let address = service.httpAddress {
                let scheme = aggregator.access.tls == nil ? "http" : "https"
                logger.notice("dashboard on \(scheme)://\(address)/ (API /api/v1/hosts, Prometheus /metrics)")
            }
        }
    }
}

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "alerts")
    @Flag(help: "Print JSON instead of a table.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("alerts"))]))
        guard case .array(let alerts)? = reply["alerts"] else { throw CLIError("the node's answer has no alert list") }
        if json { return Console.current.out(JSONValue.array(alerts).description) }
        guard !alerts.isEmpty else { return Console.current.out("no alerts firing") }
        let lines = alerts.map { alert -> String in
            let labels = alert["labels"].map { value -> String in
                guard case .object(let object) = value else { return "" }
                return " " + object.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: ",")
            } ?? ""
            let value = alert["value"]?.doubleValue.map { String($0) } ?? "-"
            let threshold = alert["threshold"]?.doubleValue.map { String($0) } ?? "-"
            return PeersTable.pad(alert["severity"]?.stringValue ?? "?", 10) + PeersTable.pad(alert["host"]?.stringValue ?? "?", 18)
                + PeersTable.pad((alert["metric"]?.stringValue ?? "?") + labels, 28) + "\(value) (threshold \(threshold)) since \(Int64(alert["starts_at"]?.doubleValue ?? 0))"
        }
        Console.current.out(lines.joined(separator: "\n"))
    }
}
