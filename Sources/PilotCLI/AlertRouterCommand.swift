#if canImport(Glibc)
internal import Glibc
#endif
internal import ArgumentParser
internal import Logging
internal import PilotAlerts
internal import PilotCore
internal import PilotRoles

/// The router's flags, shared by `pilot alert-router`, `pilot aggregator`
/// and `pilot up` (which run the router on their own node when a
/// `--receiver` is given). Each also works as a config line.
struct RouterFlags: ParsableArguments {
    @Option(name: .customLong("receiver"), help: ArgumentHelp(
        "Where notifications go (repeatable): KIND:NAME=TARGET [OPTION=VALUE]..., KIND one of slack, pagerduty, webhook, alertmanager, email, exec; a secret as @FILE or env:NAME.",
        valueName: "receiver"))
    var receivers: [String] = []

    @Option(name: .customLong("route"), help: ArgumentHelp(
        "Which alerts go where (repeatable, first match wins unless it ends in 'continue'): e.g. 'severity=critical -> oncall', 'tag:db -> dba', 'default -> slack'.",
        valueName: "route"))
    var routes: [String] = []

    @Option(name: .customLong("group-by"), help: ArgumentHelp("Labels whose alerts travel together (metric, host, severity, a label; '...' for none).", valueName: "labels"))
    var groupBy = "metric"

    @Option(name: .customLong("group-wait"), help: ArgumentHelp("How long a new group waits for more alerts before its first notification.", valueName: "duration"))
    var groupWait = Seconds(30)

    @Option(name: .customLong("group-interval"), help: ArgumentHelp("How long a group waits before notifying what changed.", valueName: "duration"))
    var groupInterval = Seconds(300)

    @Option(name: .customLong("max-age"), help: ArgumentHelp("A notification not delivered by then is given up, logged and counted.", valueName: "duration"))
    var maxAge = Seconds(86_400)

    @Option(name: .customLong("max-backoff"), help: ArgumentHelp("The longest wait between retries of a delivery.", valueName: "duration"))
    var maxBackoff = Seconds(300)

    @Option(name: .customLong("heartbeat-url"), help: ArgumentHelp("A dead man's switch (healthchecks.io style): called while the router and the hub are healthy.", valueName: "url"))
    var heartbeatURL: String?

    @Option(name: .customLong("heartbeat-every"), help: ArgumentHelp("How often the heartbeat URL is called.", valueName: "duration"))
    var heartbeatEvery = Seconds(60)

    @Option(name: .customLong("external-url"), help: ArgumentHelp("The dashboard's base URL, for links in notifications.", valueName: "url"))
    var externalURL: String?

    var isConfigured: Bool { !receivers.isEmpty }

    func validate() throws {
        for (flag, value) in [("--group-interval", groupInterval), ("--max-age", maxAge), ("--max-backoff", maxBackoff),
                              ("--heartbeat-every", heartbeatEvery)] where !(value.value > 0) {
            throw ValidationError("\(flag) must be more than 0 seconds")
        }
        guard groupWait.value >= 0, groupWait.value <= 86_400 else { throw ValidationError("--group-wait must be between 0 and 86400 seconds") }
        if !isConfigured, !routes.isEmpty { throw ValidationError("--route needs a --receiver to route to") }
        if !isConfigured, heartbeatURL != nil { throw ValidationError("--heartbeat-url needs a --receiver (it tells that the router works)") }
    }

    /// The role's options, each error naming its flag or `FILE:LINE`.
    func options(repeatInterval: Int64, locate: (String, String) -> String?) throws -> AlertRouterService.Options {
        func place(_ flag: String, _ value: String) -> String { locate(flag, value).map { "\($0): " } ?? "\(flag): " }
        var options = AlertRouterService.Options()
        for text in receivers {
            do { options.receivers.append(try ReceiverSpec(parsing: text)) } catch {
                throw CLIError(place("--receiver", text) + "\(error)", exitCode: ExitStatus.usage)
            }
        }
        for text in routes {
            do { options.routes.append(try Route(parsing: text)) } catch {
                throw CLIError(place("--route", text) + "\(error)", exitCode: ExitStatus.usage)
            }
        }
        let names = options.receivers.map(\.name)
        for (text, route) in zip(routes, options.routes) {
            for name in route.receivers where !names.contains(name) {
                throw CLIError(place("--route", text) + "no receiver is named '\(name)' (receivers: \(names.joined(separator: ", ")))", exitCode: ExitStatus.usage)
            }
        }
        options.groupBy = groupBy.split(separator: ",").map { String($0).trimmingCharacters }
        guard !options.groupBy.isEmpty, options.groupBy.allSatisfy({ !$0.isEmpty }) else {
            throw CLIError(place("--group-by", groupBy) + "give label names separated by commas, e.g. metric,host", exitCode: ExitStatus.usage)
        }
        options.timing.groupWait = groupWait.wholeSeconds
        options.timing.groupInterval = groupInterval.wholeSeconds
        options.timing.repeatInterval = repeatInterval
        options.lane.maxAge = maxAge.wholeSeconds
        options.lane.maxBackoff = max(1, maxBackoff.milliseconds)
        options.lane.minBackoff = min(1_000, options.lane.maxBackoff)
        for (flag, url) in [("--heartbeat-url", heartbeatURL), ("--external-url", externalURL)] {
            guard let url else { continue }
            do { _ = try HTTPURL(url, what: String(flag.dropFirst(2))) } catch { throw CLIError(place(flag, url) + "\(error)", exitCode: ExitStatus.usage) }
        }
        options.heartbeatURL = heartbeatURL
        options.heartbeatSeconds = heartbeatEvery.wholeSeconds
        options.externalURL = externalURL
        return options
    }

    /// The role, its secrets read: an unreadable file is an error now.
    func service(repeatInterval: Int64, stateDirectory: String, logger: Logger, locate: (String, String) -> String?) throws -> AlertRouterService {
        let options = try options(repeatInterval: repeatInterval, locate: locate)
        do {
            return try AlertRouterService(options: options, stateDirectory: stateDirectory, environment: { name in getenv(name).map { String(cString: $0) } }, logger: logger)
        } catch let error as ParseError {
            let text = receivers.first { $0.hasPrefix(error.text + "=") }
            let place = text.map { locate("--receiver", $0).map { "\($0): " } ?? "--receiver: " } ?? ""
            throw CLIError(place + "\(error)", exitCode: ExitStatus.usage)
        } catch {
            throw CLIError("cannot start the alert router: \(error)")
        }
    }
}

struct AlertRouterCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "alert-router")

    @OptionGroup var node: NodeDaemonOptions
    @OptionGroup var router: RouterFlags

    @Option(name: .customLong("repeat-interval"), help: ArgumentHelp("How often a group whose alerts still fire is notified again.", valueName: "duration"))
    var repeatInterval = Seconds(4 * 3600)

    @Argument(help: ArgumentHelp("'test RECEIVER': send one test notification through the running router and print the answer.", valueName: "test receiver"))
    var verb: [String] = []

    func validate() throws {
        guard verb.isEmpty || (verb.count == 2 && verb[0] == "test") else { throw ValidationError("unexpected '\(verb.joined(separator: " "))': the only verb is 'test RECEIVER'") }
        guard repeatInterval.value > 0 else { throw ValidationError("--repeat-interval must be more than 0 seconds") }
    }

    func run() async throws {
        if verb.count == 2 { return try test(verb[1]) }
        guard router.isConfigured else {
            throw CLIError("no receiver: give at least one --receiver, e.g. --receiver slack:ops=@/etc/pilot/slack-url", exitCode: ExitStatus.usage)
        }
        // Bad receivers and routes are named before anything else is looked at.
        _ = try router.options(repeatInterval: repeatInterval.wholeSeconds, locate: node.configLocation)
        let (options, identity) = try node.nodeOptions()
        guard options.hub != nil else { throw CLIError("no hub configured: pilot init --hub NAME (the router subscribes to alerts/* there)") }
        let logger = node.log.logger("pilot.alert-router")
        let service = try router.service(repeatInterval: repeatInterval.wholeSeconds, stateDirectory: options.stateDirectory, logger: logger,
                                         locate: node.configLocation)
        try await node.runNode(options, identity: identity, roles: [service], logger: logger, what: "the alert router")
    }

    private func test(_ receiver: String) throws {
        let reply = try askNode(node.state, JSONObject([("cmd", .string("router-test")), ("receiver", .string(receiver))]), timeoutSeconds: 60)
        let answer = reply["answer"]?.stringValue ?? "?"
        if reply["delivered"] == .bool(true) {
            Console.current.out("\(receiver): delivered (id \(reply["id"]?.stringValue ?? "?")): \(answer)")
        } else {
            throw CLIError("\(receiver): not delivered: \(answer)")
        }
    }
}

/// `pilot silence add MATCHER... --for 2h --comment TEXT | list | expire ID`.
struct SilenceCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "silence")

    @Argument(help: ArgumentHelp("add, list or expire.", valueName: "verb")) var verb: String
    @Argument(help: ArgumentHelp("add: matchers such as host=db-01 metric=disk_pct tag:db; expire: the silence's id.", valueName: "args"))
    var arguments: [String] = []
    @Option(name: .customLong("for"), help: ArgumentHelp("How long the silence lasts (add).", valueName: "duration")) var duration: Seconds?
    @Option(help: ArgumentHelp("Why (add); shown by list.", valueName: "text")) var comment = ""
    @Option(help: ArgumentHelp("Who (add; default $USER).", valueName: "name")) var by: String?
    @Flag(help: "Print JSON (list).") var json = false
    @OptionGroup var state: StateOptions

    func validate() throws {
        switch verb {
        case "add":
            guard let duration, duration.value > 0 else { throw ValidationError("silence add needs --for DURATION, e.g. --for 2h") }
            do { _ = try Silence.matchers(arguments) } catch { throw ValidationError("\(error)") }
        case "list": guard arguments.isEmpty else { throw ValidationError("silence list takes no arguments") }
        case "expire": guard arguments.count == 1 else { throw ValidationError("silence expire takes one id (see pilot silence list)") }
        default: throw ValidationError("unknown verb '\(verb)': use add, list or expire")
        }
    }

    func run() async throws {
        switch verb {
        case "add":
            let request = JSONObject([
                ("cmd", .string("silence-add")), ("matchers", .array(arguments.map { .string($0) })),
                ("for_s", .number(Double(duration?.wholeSeconds ?? 0))), ("comment", .string(comment)),
                ("by", .string(by ?? getenv("USER").map { String(cString: $0) } ?? "")),
            ])
            let reply = try askNode(state, request)
            let id = reply["silence"]?["id"]?.stringValue ?? "?"
            let ends = reply["silence"]?["ends_at"]?.int64Value ?? 0
            Console.current.out("silence \(id) until \(TimeText.rfc3339(ends)): \(arguments.joined(separator: " "))")
        case "expire":
            let reply = try askNode(state, JSONObject([("cmd", .string("silence-expire")), ("id", .string(arguments[0]))]))
            Console.current.out("silence \(reply["expired"]?.stringValue ?? arguments[0]) expired")
        default:
            let reply = try askNode(state, JSONObject([("cmd", .string("silence-list"))]))
            guard case .array(let list)? = reply["silences"] else { throw CLIError("the router's answer has no silence list") }
            if json { return Console.current.out(JSONValue.array(list).description) }
            guard !list.isEmpty else { return Console.current.out("no silences") }
            let lines = list.map { item -> String in
                let matchers: String
                if case .array(let items)? = item["matchers"] { matchers = items.compactMap(\.stringValue).joined(separator: " ") } else { matchers = "" }
                let state = item["active"] == .bool(true) ? "active" : "ended"
                return PeersTable.pad(item["id"]?.stringValue ?? "?", 14) + PeersTable.pad(state, 8)
                    + PeersTable.pad("until " + TimeText.rfc3339(item["ends_at"]?.int64Value ?? 0), 28) + PeersTable.pad(matchers, 30)
                    + (item["comment"]?.stringValue ?? "") + ((item["created_by"]?.stringValue).map { $0.isEmpty ? "" : " (\($0))" } ?? "")
            }
            Console.current.out(lines.joined(separator: "\n"))
        }
    }
}

private extension String {
    var trimmingCharacters: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
