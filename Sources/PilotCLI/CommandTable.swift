public import ArgumentParser

/// One entry of the multi-call binary: a role (a long-running service, also
/// reachable as `pilot-NAME`) or a command. This table is the single source
/// of dispatch, `pilot --help`, and the links `install.sh` creates.
public struct CommandSpec: Sendable {
    public enum Kind: Sendable { case role, command }

    public let name: String
    public let kind: Kind
    public let abstract: String
    public let usage: String
    public let details: String
    let implementation: Implementation?

    public var isBuilt: Bool { implementation != nil }
    public var linkName: String? { kind == .role ? "pilot-\(name)" : nil }

    struct Implementation: Sendable {
        let run: @Sendable ([String]) async -> Int32
        let help: @Sendable () -> String

        static func parsable<Command: AsyncParsableCommand>(_: Command.Type) -> Implementation {
            Implementation(
                run: { arguments in await runParsable(Command.self, arguments) },
                help: { Command.helpMessage(columns: 80) }
            )
        }
    }

    /// The configuration a built command gives ArgumentParser, so its help
    /// text comes from this table too.
    public var configuration: CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract, usage: usage, discussion: details)
    }
}

public enum CommandTable {
    public static let all: [CommandSpec] = [
        // Roles: long-running services, each also reachable as pilot-NAME.
        CommandSpec(
            name: "agent", kind: .role,
            abstract: "Node daemon of a host: metrics, service checks, tunnels, control socket.",
            usage: "pilot agent [--state-dir DIR] [--config FILE] [--interval SECONDS] [--check KIND:NAME=TARGET]...",
            details: """
                Runs on every monitored host. Collects CPU, memory, disk, load, network \
                and disk I/O from /proc every interval, runs local service checks (HTTP, \
                TCP, process count, Nagios-style commands, PostgreSQL, disk latency), and \
                publishes them to the hub over the encrypted overlay. It also serves the \
                local control socket every other CLI verb talks to.
                """,
            implementation: nil),
        CommandSpec(
            name: "aggregator", kind: .role,
            abstract: "The hub: fleet state, alert rules, event-stream broker, JSON API and /metrics.",
            usage: "pilot aggregator [--state-dir DIR] [--http 127.0.0.1:9100] [--rule RULE]...",
            details: """
                Hosts the broker the fleet publishes to, keeps the latest sample of every \
                metric of every host, evaluates alert rules (thresholds, for-durations, \
                host-down) and publishes alerts to alerts/METRIC/HOST. Serves /api/hosts, \
                /api/alerts and Prometheus /metrics on 127.0.0.1 by default.
                """,
            implementation: nil),
        CommandSpec(
            name: "store", kind: .role,
            abstract: "History: compressed time series on SQLite, retention, queries.",
            usage: "pilot store [--state-dir DIR] [--retention 30d] [--http 127.0.0.1:9201] [--remote-write URL]",
            details: """
                A durable subscriber to metrics/* and health/* at the hub. Stores every \
                numeric field as Gorilla-compressed chunks in one SQLite file, keeps raw \
                samples and 5-minute and 1-hour rollups, and answers `pilot query` and a \
                subset of Prometheus's HTTP read API.
                """,
            implementation: nil),
        CommandSpec(
            name: "alert-router", kind: .role,
            abstract: "Routes alerts to Slack, PagerDuty, email, webhooks and commands.",
            usage: "pilot alert-router [--state-dir DIR] [--route MATCH=RECEIVER]... [--receiver NAME=URL]...",
            details: """
                A durable subscriber to alerts/*. Delivers each firing and resolved alert \
                to its receivers and retries while a receiver is down, so no alert is lost.
                """,
            implementation: nil),
        CommandSpec(
            name: "registry", kind: .role,
            abstract: "Node directory: identity keys, overlay addresses, hostnames, tags, online/offline.",
            usage: "pilot registry [--listen 0.0.0.0:9000] [--state-dir DIR] [--join-token TOKEN]",
            details: """
                The rendezvous every node talks to first (TCP, default port 9000). Binds \
                each node's Ed25519 key to a stable overlay address, keeps hostnames, tags \
                and reachable endpoints, and tracks presence by keepalive. Every write is \
                signed by the node's key; state persists in SQLite.
                """,
            implementation: nil),
        CommandSpec(
            name: "beacon", kind: .role,
            abstract: "NAT traversal: public endpoint discovery, hole punching, ciphertext relay.",
            usage: "pilot beacon [--listen 0.0.0.0:9001]",
            details: """
                Tells a node its public endpoint (UDP, default port 9001), coordinates \
                simultaneous hole punching between two nodes behind NAT, and relays \
                ciphertext when no direct path exists. It can read nothing it relays.
                """,
            implementation: nil),

        // Commands.
        CommandSpec(
            name: "init", kind: .command,
            abstract: "Create this node's identity and config file, and print its public key.",
            usage: "pilot init [--hostname NAME] [--registry HOST:PORT] [--beacon HOST:PORT] [--state-dir DIR]",
            details: """
                Creates the state directory (mode 0700), an Ed25519 identity (mode 0600) \
                and a config file of one flag a line. Running it again keeps the identity \
                and updates the config with the flags given.
                """,
            implementation: .parsable(InitCommand.self)),
        CommandSpec(
            name: "version", kind: .command,
            abstract: "Print version and build information.",
            usage: "pilot version",
            details: "",
            implementation: .parsable(VersionCommand.self)),
        CommandSpec(
            name: "links", kind: .command,
            abstract: "List the pilot-ROLE link names the binary answers to (used by install.sh).",
            usage: "pilot links",
            details: "",
            implementation: .parsable(LinksCommand.self)),
    ]

    public static func spec(named name: String) -> CommandSpec? {
        all.first { $0.name == name }
    }

    public static var roles: [CommandSpec] { all.filter { $0.kind == .role } }

    /// The entry for a command type's own configuration. The names are
    /// literals in this file, so a miss is a programming error.
    static func configuration(for name: String) -> CommandConfiguration {
        guard let spec = spec(named: name) else { preconditionFailure("no command table entry named \(name)") }
        return spec.configuration
    }
}
