internal import ArgumentParser
internal import PilotCore
internal import PilotTransport
internal import PilotNode
internal import PilotRegistry

/// Asks the local node over its control socket; a node that is not running
/// gets a one-line error saying how to start it.
func askNode(_ state: StateOptions, _ request: JSONObject, timeoutSeconds: Int = 20) throws -> JSONValue {
    let directory = state.nodeDirectory
    let reply: JSONValue
    do {
        reply = try ControlClient.call(path: ControlSocket.path(stateDirectory: directory), request, timeoutSeconds: timeoutSeconds)
    } catch {
        // (Matching the case in the catch clause crashes Swift 6.3's SIL verifier with typed throws.)
        if case .notRunning = error {
            throw noNodeRunning(directory)
        }
        throw CLIError(error.description)
    }
    guard reply["ok"] == .bool(true) else { throw CLIError(reply["error"]?.stringValue ?? "the node refused the request") }
    return reply
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "status")
    @Flag(help: "Print the node's answer as JSON.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("status"))]))
        if json { return Console.current.out(reply.description) }
        func text(_ key: String) -> String { reply[key]?.stringValue ?? "-" }
        let registered = reply["registered"] == .bool(true)
        var lines = [
            "hostname:     \(text("hostname"))",
            "address:      \(text("address"))",
            "public key:   \(text("public_key"))",
            "registry:     \(text("registry")) (\(registered ? "online" : "not registered"))",
        ]
        if case .array(let tags)? = reply["tags"] { lines.append("tags:         \(tags.compactMap(\.stringValue).joined(separator: ", "))") }
        if let key = reply["registry_key"]?.stringValue { lines.append("registry key: \(key)") }
        if !registered, let error = reply["last_error"]?.stringValue { lines.append("last error:   \(error)") }
        if let router = reply["alert-router"] { lines += Self.routerLines(router) }
        Console.current.out(lines.joined(separator: "\n"))
    }

    /// The alert router's receivers, one a line, with their outbox and counts.
    static func routerLines(_ router: JSONValue) -> [String] {
        func number(_ value: JSONValue?, _ key: String) -> Int { Int(value?[key]?.doubleValue ?? 0) }
        guard case .array(let receivers)? = router["receivers"] else { return [] }
        var lines = ["alert router: \(receivers.count) receivers, \(number(router, "groups")) groups, \(number(router, "silences")) silences active"]
        for receiver in receivers {
            let name = receiver["name"]?.stringValue ?? "?"
            lines.append("  " + PeersTable.pad(name, 12) + PeersTable.pad(receiver["kind"]?.stringValue ?? "?", 14)
                         + PeersTable.pad(receiver["target"]?.stringValue ?? "", 34)
                         + "queued \(number(receiver, "queued"))  delivered \(number(receiver, "delivered"))  retried \(number(receiver, "retried"))  failed \(number(receiver, "failed"))")
            if let error = receiver["last_error"]?.stringValue { lines.append("    last error: \(error)") }
        }
        if let heartbeat = router["heartbeat"] {
            lines.append("  heartbeat   \(heartbeat["url"]?.stringValue ?? "")  sent \(number(heartbeat, "sent"))  failed \(number(heartbeat, "failed"))")
        }
        return lines
    }
}

struct PeersCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "peers")
    @Option(help: ArgumentHelp("tag:NAME, or part of a hostname.", valueName: "query")) var search: String?
    @Flag(help: "Only nodes that are online.") var online = false
    @Flag(help: "Print JSON instead of a table.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([
            ("cmd", .string("peers")), ("search", .string(search ?? "")), ("online", .bool(online)),
        ]))
        guard case .array(let nodes)? = reply["nodes"] else { throw CLIError("the node's answer has no node list") }
        if json { return Console.current.out(JSONValue.array(nodes).description) }
        let views = try nodes.map { try RegistryProtocol.nodeView($0) }
        Console.current.out(PeersTable.render(views))
    }
}

/// The monitoring guide's one-node-a-line listing, column for column
/// (address, hostname and tags in columns of 18, 17 and 43, wider when a
/// name or the tags need it):
/// `1:0001.0000.0001  web-server-01    [web-server, production, us-east]          online`
enum PeersTable {
    static func render(_ views: [NodeView]) -> String {
        guard !views.isEmpty else { return "no nodes" }
        let nameWidth = max(17, (views.map(\.record.hostname.count).max() ?? 0) + 1)
        let tagTexts = views.map { "[" + $0.record.tags.joined(separator: ", ") + "]" }
        let tagWidth = max(43, (tagTexts.map(\.count).max() ?? 0) + 1)
        return zip(views, tagTexts).map { view, tags in
            pad(view.record.address.description, 18) + pad(view.record.hostname, nameWidth) + pad(tags, tagWidth) + view.presence.rawValue
        }.joined(separator: "\n")
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(1, width - text.count))
    }
}

struct SetTagsCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "set-tags")
    @Argument(help: ArgumentHelp("The node's tags, replacing the old ones (none clears them).", valueName: "tag"))
    var tags: [String] = []
    @OptionGroup var state: StateOptions

    func validate() throws {
        do { _ = try Tags.validate(tags) } catch { throw ValidationError("\(error)") }
    }

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("set-tags")), ("tags", .array(tags.map { .string($0) }))]))
        let stored = (reply["tags"].flatMap { if case .array(let items) = $0 { items.compactMap(\.stringValue) } else { nil } }) ?? tags
        Console.current.out("tags: [\(stored.joined(separator: ", "))]")
    }
}

struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "ping")
    @Argument(help: ArgumentHelp("A hostname or overlay address.", valueName: "host")) var host: String
    @Option(help: ArgumentHelp("How many echo requests.", valueName: "n")) var count = 4
    @Option(help: ArgumentHelp("Time between requests (e.g. 1s, 0.2).", valueName: "duration")) var interval = Seconds(1)
    @Flag(help: "Send --count messages over one reliable stream to the echo port instead, and check every echo comes back in order.")
    var stream = false
    @OptionGroup var state: StateOptions

    func validate() throws {
        guard (1...100_000).contains(count) else { throw ValidationError("--count must be between 1 and 100000") }
        guard interval.value >= 0, interval.value <= 60 else { throw ValidationError("--interval must be between 0 and 60 seconds") }
    }

    func run() async throws {
        if stream {
            let reply = try askNode(state, JSONObject([("cmd", .string("ping")), ("host", .string(host)), ("stream", .number(Double(count)))]),
                                    timeoutSeconds: 150)
            let seconds = (reply["elapsed_us"]?.doubleValue ?? 0) / 1_000_000
            let via = reply["path"]?.stringValue.map { " via \($0)" } ?? ""
            return Console.current.out("\(count) messages echoed complete and in order over one stream by \(reply["hostname"]?.stringValue ?? host)\(via) in \(Self.milliseconds(seconds * 1000)) ms")
        }
        var rtts: [Double] = []
        for sequence in 1...count {
            do {
                let reply = try askNode(state, JSONObject([("cmd", .string("ping")), ("host", .string(host))]))
                let rtt = (reply["rtt_us"]?.doubleValue ?? 0) / 1000
                rtts.append(rtt)
                let via = reply["path"]?.stringValue.map { " via \($0)" } ?? ""
                Console.current.out("reply from \(reply["hostname"]?.stringValue ?? host) (\(reply["address"]?.stringValue ?? "?"))\(via): seq=\(sequence) time=\(Self.milliseconds(rtt)) ms")
            } catch let error as CLIError where error.description.hasPrefix("no pilot node is running") {
                throw error
            } catch {
                Console.current.out("no reply from \(host): seq=\(sequence) (\(error))")
            }
            if sequence < count, interval.value > 0 { try await Task.sleep(for: .milliseconds(interval.milliseconds)) }
        }
        let lost = count - rtts.count
        var summary = "\(count) sent, \(rtts.count) received, \(lost * 100 / count)% loss"
        if let low = rtts.min(), let high = rtts.max() {
            summary += ", rtt min/avg/max = \(Self.milliseconds(low))/\(Self.milliseconds(rtts.reduce(0, +) / Double(rtts.count)))/\(Self.milliseconds(high)) ms"
        }
        Console.current.out(summary)
        if rtts.isEmpty { throw CLIError("no reply from \(host)") }
    }

    static func milliseconds(_ value: Double) -> String {
        let scaled = Int((value * 1000).rounded())
        let fraction = String(scaled % 1000)
        return "\(scaled / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

struct HandshakeCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "handshake")
    @Argument(help: ArgumentHelp("The node to ask, by hostname or address.", valueName: "host")) var host: String
    @Argument(help: ArgumentHelp("Why: shown to the other node's operator.", valueName: "justification")) var justification = ""
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("handshake")), ("host", .string(host)), ("why", .string(justification))]))
        switch reply["status"]?.stringValue {
        case "approved": Console.current.out("\(host) trusts this node, and this node trusts \(host)")
        default: Console.current.out("asked \(host); waiting for its operator to run 'pilot approve' (see 'pilot pending' there)")
        }
    }
}

/// `pilot approve|reject|untrust HOST`.
struct TrustDecision: ParsableArguments {
    @Argument(help: ArgumentHelp("A hostname, or a key (base64 or SHA256 fingerprint).", valueName: "host")) var host: String
    @OptionGroup var state: StateOptions

    func ask(_ command: String, _ done: String, extra: JSONObject = JSONObject()) throws {
        var request = JSONObject([("cmd", .string(command)), ("host", .string(host))])
        for member in extra { request[member.key] = member.value }
        let reply = try askNode(state, request)
        var line = "\(done) \(reply["hostname"]?.stringValue ?? host)"
        if case .array(let topics)? = reply["publish"], !topics.isEmpty { line += ", who may also publish " + topics.compactMap(\.stringValue).joined(separator: " ") }
        Console.current.out(line)
    }
}

struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "approve")
    @OptionGroup var decision: TrustDecision
    @Option(name: .customLong("publish"), help: ArgumentHelp(
        "Topics it may publish beyond its own metrics/*/HOST and health/*/HOST (repeatable), e.g. 'metrics/*' for a collector that relays for others, 'alerts/*' for another aggregator. Given for a trusted node, replaces what it may publish.",
        valueName: "filter"))
    var publish: [String] = []

    func validate() throws {
        for filter in publish { do { _ = try TopicFilter(filter) } catch { throw ValidationError("--publish: \(error)") } }
    }

    func run() async throws {
        try decision.ask("approve", "trusted", extra: publish.isEmpty ? JSONObject() : JSONObject([("publish", .array(publish.map { .string($0) }))]))
    }
}

struct RejectCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "reject")
    @OptionGroup var decision: TrustDecision
    func run() async throws { try decision.ask("reject", "rejected the request of") }
}

struct UntrustCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "untrust")
    @OptionGroup var decision: TrustDecision
    func run() async throws { try decision.ask("untrust", "no longer trusted:") }
}

enum TrustListing {
    static func lines(_ value: JSONValue?, _ empty: String) -> String {
        guard case .array(let items)? = value, !items.isEmpty else { return empty }
        return items.map { item in
            let why = item["justification"]?.stringValue ?? ""
            return PeersTable.pad(item["hostname"]?.stringValue ?? "?", 18) + (item["key"]?.stringValue ?? "?") + (why.isEmpty ? "" : "  \"\(why)\"")
        }.joined(separator: "\n")
    }
}

struct PendingCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "pending")
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("pending"))]))
        if json { return Console.current.out(reply.description) }
        Console.current.out("asking to be trusted by this node:\n" + TrustListing.lines(reply["incoming"], "  (none)")
                            + "\nthis node asked, no answer yet:\n" + TrustListing.lines(reply["outgoing"], "  (none)"))
    }
}

struct TrustCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "trust")
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var state: StateOptions

    func run() async throws {
        let reply = try askNode(state, JSONObject([("cmd", .string("trust"))]))
        if json { return Console.current.out(reply.description) }
        Console.current.out(TrustListing.lines(reply["trusted"], "no trusted peers"))
    }
}
