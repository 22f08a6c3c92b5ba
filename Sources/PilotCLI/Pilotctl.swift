internal import PilotCore

/// `pilotctl`: the command line of Pilot Protocol's monitoring guide, as a
/// name of this binary. Scripts written for it run unchanged: each of its
/// verbs becomes the `pilot` verb that does the same (`plan`), `daemon`
/// runs the node in the background (`PilotctlDaemon`), and exit statuses
/// are the guide's: 0, 1 for an error, 2 for a usage error.
enum Pilotctl {
    static let name = "pilotctl"

    /// What one pilotctl command line does.
    enum Plan: Equatable {
        /// Run `pilot VERB ARGUMENTS`.
        case pilot(verb: String, arguments: [String])
        case daemon(PilotctlDaemon.Action, arguments: [String])
        case help
    }

    struct UsageError: Error, Equatable, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Verbs that are the pilot verb of the same name.
    static let sameVerbs: Set<String> = ["init", "peers", "set-tags", "handshake", "approve", "reject", "pending",
                                         "trust", "untrust", "ping", "status", "publish", "subscribe"]
    /// Of those, the ones that print JSON with `--json`.
    static let jsonVerbs: Set<String> = ["peers", "pending", "trust", "status", "subscribe"]
    /// pilotctl's other names for a verb.
    static let aliases = ["info": "status"]

    static var verbs: [String] { (sameVerbs.union(aliases.keys).union(["daemon"])).sorted() }

    /// The plan for `pilotctl ARGUMENTS`. `--json` may stand anywhere on
    /// the line (the guide puts it first); it goes to the verb that has it.
    static func plan(_ arguments: [String]) throws(UsageError) -> Plan {
        let json = arguments.contains("--json")
        var words = arguments.filter { $0 != "--json" }
        guard let first = words.first else { return .help }
        words.removeFirst()
        if ["-h", "--help", "help"].contains(first) { return .help }
        let verb = aliases[first] ?? first
        if verb == "daemon" {
            guard let word = words.first, let action = PilotctlDaemon.Action(rawValue: word) else {
                throw UsageError("daemon needs start, stop or status")
            }
            return .daemon(action, arguments: Array(words.dropFirst()) + (json ? ["--json"] : []))
        }
        guard sameVerbs.contains(verb) else {
            throw UsageError("unknown command '\(first)'; expected one of: \(verbs.joined(separator: ", "))")
        }
        var rest = words
        switch verb {
        case "publish":
            // The guide: publish TOPIC --data JSON. Pilot's own form names the hub first.
            let leading = rest.prefix { !$0.hasPrefix("-") }
            if leading.count == 2 { rest = [leading[leading.startIndex + 1]] + rest.dropFirst(2) + ["--to", leading[leading.startIndex]] }
            if leading.count > 2 { throw UsageError("publish takes [HUB] TOPIC --data JSON, not \(leading.count) words") }
        case "subscribe":
            // subscribe FILTER, or subscribe HUB FILTER: a hub is a hostname, which has no '/' or '*'.
            let leading = rest.prefix { !$0.hasPrefix("-") }
            if leading.count >= 2, let hub = leading.first, !hub.contains("/"), !hub.contains("*") {
                rest = Array(rest.dropFirst()) + ["--from", hub]
            }
        default:
            break
        }
        if json, jsonVerbs.contains(verb) { rest.append("--json") }
        return .pilot(verb: verb, arguments: rest)
    }

    /// pilot's exit statuses as pilotctl's: a usage error is 2, and
    /// everything else that is not success is 1.
    static func exitStatus(_ status: Int32) -> Int32 {
        switch status {
        case ExitStatus.success: ExitStatus.success
        case ExitStatus.usage: 2
        default: ExitStatus.failure
        }
    }

    static func run(_ arguments: [String]) async -> Int32 {
        let plan: Plan
        do { plan = try self.plan(arguments) } catch {
            Console.current.err("\(name): \(error.description) (see '\(name) --help')")
            return 2
        }
        switch plan {
        case .help:
            Console.current.out(help)
            return arguments.isEmpty ? 2 : ExitStatus.success
        case let .daemon(action, arguments):
            return exitStatus(await PilotctlDaemon.run(action, arguments))
        case let .pilot(verb, arguments):
            guard let spec = CommandTable.spec(named: verb), let implementation = spec.implementation else {
                Console.current.err("\(name): \(verb) is not built in this pilot")
                return ExitStatus.failure
            }
            return exitStatus(await implementation.run("\(name) \(verb)", arguments))
        }
    }

    static let help = """
        pilotctl: Pilot Protocol's command line, as a name of pilot.

          pilotctl init --hostname NAME [--registry HOST:PORT] [--beacon HOST:PORT] [--join-token @FILE]
          pilotctl daemon start [--registry HOST:PORT] [--beacon HOST:PORT] | daemon stop | daemon status
          pilotctl set-tags TAG...
          pilotctl handshake HOST "why"        pilotctl approve HOST    pilotctl pending    pilotctl trust
          pilotctl publish [HUB] TOPIC --data JSON
          pilotctl subscribe [HUB] FILTER      prints '[topic] payload' a line ('*' matches one level, a trailing '*' the rest)
          pilotctl peers [--search tag:NAME]   pilotctl info    pilotctl ping HOST

        --json may stand anywhere on the line. Without a HUB, publish and subscribe
        use the fleet's hub. Each verb is the pilot verb of the same name ('pilot
        help VERB' tells more); the daemon is 'pilot agent --no-metrics', a node
        that collects nothing itself (run 'pilot agent' for that). Exit status: 0,
        1 for an error, 2 for a usage error.
        """
}
