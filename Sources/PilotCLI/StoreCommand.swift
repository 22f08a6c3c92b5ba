#if canImport(Glibc)
internal import Glibc
#endif
internal import ArgumentParser
internal import Logging
internal import PilotCore
internal import PilotRemoteWrite
internal import PilotRoles

struct StoreCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "store")

    @OptionGroup var node: NodeDaemonOptions

    @Option(help: ArgumentHelp("Where Prometheus's read API answers (/api/v1/query_range, …; 'off' for nowhere).", valueName: "host:port"))
    var http = "127.0.0.1:9201"

    @OptionGroup(title: "Read API access (TLS and a token; required beyond loopback)") var httpAccess: HTTPFlags
    @OptionGroup var history: HistoryFlags

    func validate() throws {
        if http != "off" { try httpAccess.check(try parseEndpoint(http, flag: "--http", listening: true), stateDirectory: node.state.resolved) }
    }

    func run() async throws {
        let (options, identity) = try node.nodeOptions()
        guard options.hub != nil else { throw CLIError("no hub configured: pilot init --hub NAME (the store subscribes there)") }
        let logger = node.log.logger("pilot.store")
        let endpoint = http == "off" ? nil : try parseEndpoint(http, flag: "--http", listening: true)
        let access = try httpAccess.access(for: endpoint, stateDirectory: options.stateDirectory)
        let service = try history.service(stateDirectory: options.stateDirectory, http: endpoint, access: access, logger: logger)
        try await node.runNode(options, identity: identity, roles: [service], logger: logger, what: "the store")
    }
}

/// What the store keeps and where else it sends it: `pilot store`'s
/// flags, and `pilot aggregator --with store`'s.
struct HistoryFlags: ParsableArguments {
    @Option(help: ArgumentHelp("How long raw samples are kept (e.g. 30d).", valueName: "duration"))
    var retention = "30d"

    @Option(name: .customLong("rollup-retention"), help: ArgumentHelp("How long the 5-minute and 1-hour rollups are kept.", valueName: "duration"))
    var rollupRetention = "365d"

    @Option(name: .customLong("remote-write"), help: ArgumentHelp(
        "Also send every new sample to this Prometheus remote-write endpoint (Prometheus, Mimir, Thanos, VictoriaMetrics); user:password@ in the URL is basic auth.",
        valueName: "url"))
    var remoteWrite: String?

    @Option(name: .customLong("remote-write-backlog"), help: ArgumentHelp(
        "Megabytes of requests kept on disk while the endpoint is away; past that the oldest are dropped.", valueName: "MB"))
    var remoteWriteBacklog = 256

    @Option(name: .customLong("remote-write-header"), help: ArgumentHelp(
        "A header for every remote-write request (repeatable), e.g. 'X-Scope-OrgID: tenant-1' or 'Authorization: Bearer …'.",
        valueName: "name: value"))
    var remoteWriteHeaders: [String] = []

    func validate() throws {
        for header in remoteWriteHeaders {
            do { _ = try RemoteWriteTarget.header(header) } catch { throw ValidationError("--remote-write-header: \(error)") }
        }
        if !remoteWriteHeaders.isEmpty && remoteWrite == nil { throw ValidationError("--remote-write-header needs --remote-write") }
        if let remoteWrite {
            do { _ = try RemoteWriteTarget(remoteWrite) } catch { throw ValidationError("--remote-write: \(error)") }
        }
        guard (1...1_000_000).contains(remoteWriteBacklog) else { throw ValidationError("--remote-write-backlog must be between 1 and 1000000 MB") }
        _ = try parseDuration(retention, flag: "--retention")
        _ = try parseDuration(rollupRetention, flag: "--rollup-retention")
    }

    /// The store role with these settings.
    func service(stateDirectory: String, http endpoint: Endpoint?, access: HTTPAccess, logger: Logger) throws -> StoreService {
        let service: StoreService
        do {
            var kept = StoreService.Retention()
            kept.raw = try parseDuration(retention, flag: "--retention") * 1000
            kept.rollups = try parseDuration(rollupRetention, flag: "--rollup-retention") * 1000
            service = try StoreService(stateDirectory: stateDirectory,
                                       http: endpoint, httpAccess: access, retention: kept,
                                       remoteWrite: remoteWrite.map { .init(url: $0, backlogBytes: remoteWriteBacklog << 20, headers: remoteWriteHeaders) }, logger: logger)
        } catch {
            throw CLIError("cannot start the store: \(error)")
        }
        return service
    }
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "query")
    @Argument(help: ArgumentHelp("The metric, e.g. cpu_pct.", valueName: "metric")) var metric: String
    @Option(help: ArgumentHelp("Only this host.", valueName: "host")) var host: String?
    @Option(name: .customLong("label"), help: ArgumentHelp("Only series with this label (repeatable), e.g. mount=/var.", valueName: "k=v"))
    var labels: [String] = []
    @Option(help: ArgumentHelp("How far back (e.g. 1h, 7d); default 1h.", valueName: "duration")) var since: String?
    @Option(help: ArgumentHelp("Start, Unix seconds.", valueName: "time")) var from: Int64?
    @Option(help: ArgumentHelp("End, Unix seconds (default now).", valueName: "time")) var to: Int64?
    @Option(help: ArgumentHelp("One point per step (e.g. 5m), aggregated by --agg.", valueName: "duration")) var step: String?
    @Option(help: ArgumentHelp("avg, min, max, last or count.", valueName: "agg")) var agg = "avg"
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print CSV: metric,labels,timestamp,value.") var csv = false
    @OptionGroup var state: StateOptions

    func validate() throws {
        if since != nil && from != nil { throw ValidationError("give --since or --from, not both") }
        if let since { _ = try parseDuration(since, flag: "--since") }
        if let step { _ = try parseDuration(step, flag: "--step") }
        guard ["avg", "min", "max", "last", "count"].contains(agg) else { throw ValidationError("--agg must be avg, min, max, last or count") }
        for label in labels where !label.contains("=") { throw ValidationError("--label '\(label)': use NAME=VALUE") }
        if json && csv { throw ValidationError("give --json or --csv, not both") }
    }

    func run() async throws {
        var clock = timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        let now = Int64(clock.tv_sec)
        let end = (to ?? now) * 1000
        let start = try from.map { $0 * 1000 } ?? end - parseDuration(since ?? "1h", flag: "--since") * 1000
        var wanted = JSONObject()
        if let host { wanted["host"] = .string(host) }
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1)
            wanted[String(parts[0])] = .string(parts.count > 1 ? String(parts[1]) : "")
        }
        var request = JSONObject([("cmd", .string("query")), ("metric", .string(metric)), ("from", .number(Double(start))), ("to", .number(Double(end))),
                                  ("labels", .object(wanted)), ("agg", .string(agg))])
        if let step { request["step"] = .number(Double(try parseDuration(step, flag: "--step") * 1000)) }
        let reply = try askNode(state, request, timeoutSeconds: 120)
        guard case .array(let series)? = reply["series"] else { throw CLIError("the store's answer has no series") }
        if json { return Console.current.out(JSONValue.array(series).description) }
        var lines: [String] = csv ? ["metric,labels,timestamp,value"] : []
        for entry in series {
            let labelText = entry["labels"].map { value -> String in
                guard case .object(let object) = value else { return "" }
                return object.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: csv ? ";" : ",")
            } ?? ""
            guard case .array(let points)? = entry["points"] else { continue }
            if !csv { lines.append("\(metric){\(labelText)}") }
            for point in points {
                guard case .array(let pair) = point, pair.count == 2, let ms = pair[0].doubleValue else { continue }
                let value = pair[1].doubleValue.map { String($0) } ?? "NaN"
                lines.append(csv ? "\(metric),\(labelText),\(Int64(ms) / 1000),\(value)" : "  \(Int64(ms) / 1000)  \(value)")
            }
        }
        Console.current.out(lines.isEmpty ? "no samples" : lines.joined(separator: "\n"))
    }
}
