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
        /// `name` is how errors name the command: "pilot publish", "pilotctl publish".
        let run: @Sendable (_ name: String, _ arguments: [String]) async -> Int32
        let help: @Sendable () -> String

        static func parsable<Command: AsyncParsableCommand>(_: Command.Type) -> Implementation {
            Implementation(
                run: { name, arguments in await runParsable(Command.self, name: name, arguments) },
                help: { Command.helpMessage(columns: 80) }
            )
        }
    }

    /// The configuration a built command gives ArgumentParser, so its help
    /// text comes from this table too.
    /// Its usage line is ArgumentParser's, generated from the real options;
    /// `usage` here describes roles that are not built yet.
    public var configuration: CommandConfiguration {
        var discussion = details
        if let linkName { discussion += (discussion.isEmpty ? "" : "\n\n") + "Also runs as \(linkName), a link to pilot." }
        return CommandConfiguration(commandName: "pilot \(name)", abstract: abstract, discussion: discussion)
    }
}

public enum CommandTable {
    /// How every daemon stops (`Daemon.run`), for the help of each.
    static let stopping = "SIGTERM or SIGINT stops it gracefully within 10 s (past that it exits 1 naming what did not finish); a second signal stops it at once."

    public static let all: [CommandSpec] = [
        // Roles: long-running services, each also reachable as pilot-NAME.
        CommandSpec(
            name: "agent", kind: .role,
            abstract: "Node daemon of a host: metrics, service checks, tunnels, control socket.",
            usage: "pilot agent [--state-dir DIR] [--config FILE] [--interval 30s] [--no-metrics] [--check KIND:NAME=TARGET]...",
            details: """
                Runs on every monitored host as its node of the overlay: the identity \
                made by 'pilot init', a session with the registry (register, a keepalive \
                every --keepalive, registering again after a registry restart, backing \
                off while it is down), encrypted tunnels, trust, an event broker and the \
                local control socket that the other commands talk to. Every --interval \
                (a duration such as 30s or 2m) it reads the host's CPU, memory, disks, \
                load, network, disk I/O and uptime, runs its --check's, and publishes \
                them to the hub (pilot init --hub; without one it collects nothing) \
                through its on-disk spool. --no-metrics collects nothing and runs no \
                checks: a node that only relays, brokers or subscribes. --once --print \
                shows one cycle without any network. Reads STATE/config first; flags \
                given here win. \(stopping)
                """,
            implementation: .parsable(AgentCommand.self)),
        CommandSpec(
            name: "aggregator", kind: .role,
            abstract: "The hub: fleet state, alert rules, event-stream broker, JSON API and /metrics.",
            usage: "pilot aggregator [--state-dir DIR] [--http 127.0.0.1:9190] [--rule RULE]... [--host-down-after 90s] [--repeat-interval 4h]",
            details: """
                A node that is the fleet's hub: hosts the broker the fleet publishes to, \
                keeps the latest sample of every metric of every host, evaluates alert \
                rules (thresholds, for-durations, host-down) and publishes alerts to \
                alerts/METRIC/HOST; the alert state survives a restart. Serves the \
                dashboard (/), its API (/api/v1/..., docs/API.md), /api/hosts, \
                /api/alerts and Prometheus /metrics on 127.0.0.1:9190 by default; beyond \
                loopback only with TLS (--tls-cert and --tls-key, else pilot init's \
                STATE/tls.crt) and --http-token @FILE. It \
                prints the fleet table every --table-interval. Unless \
                --no-metrics it also collects this host's metrics, as pilot agent does. \
                \(stopping)
                """,
            implementation: .parsable(AggregatorCommand.self)),
        CommandSpec(
            name: "store", kind: .role,
            abstract: "History: compressed time series on SQLite, retention, rollups, queries.",
            usage: "pilot store [--state-dir DIR] [--retention 30d] [--rollup-retention 365d] [--http 127.0.0.1:9201] [--remote-write URL]",
            details: """
                A node that is a durable subscriber to metrics/* and health/* at the hub \
                (pilot init --hub). Stores every numeric field as compressed chunks in \
                one SQLite file (STATE/store.db), acknowledging only what is committed, \
                and answers 'pilot query'. Raw samples are kept for --retention; as they \
                age out they are rolled up into 5-minute and 1-hour min/max/sum/count, \
                kept for --rollup-retention. --http answers a subset of Prometheus's read \
                API (/api/v1/query_range, /api/v1/query, /api/v1/series, /api/v1/labels), \
                so Grafana can read the history. --remote-write also sends every new \
                sample to a Prometheus remote-write endpoint, from a backlog on disk \
                bounded by --remote-write-backlog. Unless --no-metrics it also collects \
                this host's metrics, as pilot agent does. \(stopping)
                """,
            implementation: .parsable(StoreCommand.self)),
        CommandSpec(
            name: "alert-router", kind: .role,
            abstract: "Routes alerts to Slack, PagerDuty, email, webhooks, Alertmanager and commands; none is lost.",
            usage: "pilot alert-router [--state-dir DIR] --receiver KIND:NAME=TARGET... [--route 'MATCH -> RECEIVER']... [--group-wait 30s] | pilot alert-router test RECEIVER",
            details: """
                A node that is a durable subscriber to alerts/* at the hub (pilot init \
                --hub). Routes each alert by severity, metric, host, status, labels and \
                the host's registry tags (first match, or on with 'continue'; alerts no \
                route takes go to the receivers no route names), groups them \
                (--group-by metric: one metric's alerts across hosts travel together) \
                with Alertmanager's timing (--group-wait 30s, --group-interval 5m, \
                --repeat-interval 4h), holds back a host's other alerts while it is \
                down, and honours 'pilot silence'. Notifications wait in an outbox in \
                STATE/router.db until their receiver takes them: each is retried with \
                backoff and jitter (honouring 429 and Retry-After, and each receiver's \
                rate=N/s) until delivered or older than --max-age, then counted and \
                logged. An alert is acknowledged to the hub only once it is saved, so \
                a crash loses nothing. Receivers: slack:NAME=URL, pagerduty:NAME=KEY \
                [url=...], webhook:NAME=URL (Alertmanager's webhook JSON, version 4), \
                alertmanager:NAME=URL (its /api/v2/alerts), email:NAME=smtp://HOST:PORT \
                to=ADDR [user=... password=...] or email:NAME=/usr/sbin/sendmail to=ADDR, \
                exec:NAME=/path [timeout=10s]; a secret as @FILE or env:NAME keeps it \
                out of ps. 'pilot alert-router test NAME' sends a test notification \
                through the running router. It also runs inside pilot aggregator and \
                pilot up when they are given a --receiver. Unless --no-metrics it also \
                collects this host's metrics, as pilot agent does. \(stopping)
                """,
            implementation: .parsable(AlertRouterCommand.self)),
        CommandSpec(
            name: "registry", kind: .role,
            abstract: "Node directory: identity keys, overlay addresses, hostnames, tags, online/offline.",
            usage: "pilot registry [--listen 0.0.0.0:9000] [--state-dir DIR] [--join-token @FILE]",
            details: """
                The rendezvous every node talks to first (TCP, default port 9000). Binds \
                each node's Ed25519 key to a stable overlay address, keeps hostnames, tags \
                and reachable endpoints, and tracks presence by keepalive. Every write is \
                signed by the node's key; state persists in SQLite. A read-only status \
                page and /api/nodes answer on --http (127.0.0.1:9080). 'pilot registry \
                revoke HOST' on the registry host releases a hostname for a reinstalled \
                host. \(stopping)
                """,
            implementation: .parsable(RegistryCommand.self)),
        CommandSpec(
            name: "beacon", kind: .role,
            abstract: "NAT traversal: public endpoint discovery, hole punching, ciphertext relay.",
            usage: "pilot beacon [--listen 0.0.0.0:9001]",
            details: """
                Tells a node its public endpoint (UDP, default port 9001), coordinates \
                simultaneous hole punching between two nodes behind NAT, and relays \
                ciphertext when no direct path exists. It can read nothing it relays, and \
                bounds what it forwards per node. 'pilot beacon status' shows its counters. \
                \(stopping)
                """,
            implementation: .parsable(BeaconCommand.self)),

        // Commands.
        CommandSpec(
            name: "up", kind: .command,
            abstract: "A fleet of one on this machine: registry, beacon, aggregator, store and this host's agent.",
            usage: "pilot up [--state-dir DIR] [--http 127.0.0.1:9190] [--interval 10s] [--table-interval 20s] [--check KIND:NAME=TARGET]... [--for DURATION]",
            details: """
                The embedded default to start with, in one process on loopback: a \
                registry, a beacon, and one node that is the hub and runs the \
                aggregator, the store and this host's metrics and checks; state in a \
                temporary directory unless --state-dir is given. It prints where \
                everything is, then this host's fleet table every --table-interval. \
                The dashboard, its API and /metrics answer on the printed address \
                (127.0.0.1:9190, or a free port if that one is taken), and Prometheus's \
                read API of the history on 127.0.0.1:9201 (or a free port). --for \
                stops it after that long; \(stopping)
                """,
            implementation: .parsable(UpCommand.self)),
        CommandSpec(
            name: "init", kind: .command,
            abstract: "Create this node's identity, config file and HTTPS certificate, and print its public key.",
            usage: "pilot init [--hostname NAME] [--registry HOST:PORT] [--beacon HOST:PORT] [--hub NAME] [--tag TAG]... [--state-dir DIR]",
            details: """
                Creates the state directory (mode 0700), an Ed25519 identity (mode 0600) \
                and a config file of one flag a line, which the node daemons (agent, \
                aggregator, store) read, and a self-signed ECDSA P-256 certificate for \
                HTTPS beyond loopback (tls.crt, and tls.key mode 0600) for the hostname, \
                localhost and 127.0.0.1, valid ten years; it prints its SHA-256 \
                fingerprint. Running it again keeps the identity and the certificate and \
                updates the config with the flags given.
                """,
            implementation: .parsable(InitCommand.self)),
        CommandSpec(
            name: "status", kind: .command,
            abstract: "Show this node: address, key, registry and whether it is registered.",
            usage: "pilot status [--json] [--state-dir DIR]",
            details: "Asks the running node (pilot agent, aggregator, store or up) over its control socket. --json adds the event service's counters and each role's section.",
            implementation: .parsable(StatusCommand.self)),
        CommandSpec(
            name: "peers", kind: .command,
            abstract: "List the fleet from the registry, one node a line.",
            usage: "pilot peers [--search tag:NAME | --search TEXT] [--online] [--json] [--state-dir DIR]",
            details: "--search tag:production lists nodes with that tag; any other text matches hostnames.",
            implementation: .parsable(PeersCommand.self)),
        CommandSpec(
            name: "ping", kind: .command,
            abstract: "Echo round trips to another node through the encrypted tunnel.",
            usage: "pilot ping HOST [--count N] [--interval 1s] [--stream] [--state-dir DIR]",
            details: "HOST is a hostname or an overlay address; the local node finds its key and endpoints at the registry and opens a tunnel to it. Ping needs no trust (port 7). --stream sends --count messages over one reliable stream and checks that every echo comes back in order.",
            implementation: .parsable(PingCommand.self)),
        CommandSpec(
            name: "handshake", kind: .command,
            abstract: "Ask another node to trust this one, with a reason its operator sees.",
            usage: "pilot handshake HOST \"justification\" [--state-dir DIR]",
            details: "Trust is mutual once approved. It is approved at once when both nodes asked, or when both were initialised with the same --join-token (proven, never sent). Only trusted peers may use ports other than 7 (echo) and 444 (this handshake).",
            implementation: .parsable(HandshakeCommand.self)),
        CommandSpec(
            name: "pending", kind: .command,
            abstract: "List trust requests waiting for an answer, both ways.",
            usage: "pilot pending [--json] [--state-dir DIR]",
            details: "",
            implementation: .parsable(PendingCommand.self)),
        CommandSpec(
            name: "approve", kind: .command,
            abstract: "Trust the node that asked (its key is pinned).",
            usage: "pilot approve HOST [--publish FILTER]... [--state-dir DIR]",
            details: "A later, different key for the same hostname is refused loudly until 'pilot untrust HOST'. On a hub, a node publishes only its own metrics/*/HOST and health/*/HOST unless --publish grants more ('metrics/*' for a collector, 'alerts/*' for another aggregator); given for a trusted node, it replaces its grants.",
            implementation: .parsable(ApproveCommand.self)),
        CommandSpec(
            name: "reject", kind: .command,
            abstract: "Refuse a node's trust request.",
            usage: "pilot reject HOST [--state-dir DIR]",
            details: "",
            implementation: .parsable(RejectCommand.self)),
        CommandSpec(
            name: "trust", kind: .command,
            abstract: "List the peers this node trusts, with their key fingerprints.",
            usage: "pilot trust [--json] [--state-dir DIR]",
            details: "",
            implementation: .parsable(TrustCommand.self)),
        CommandSpec(
            name: "untrust", kind: .command,
            abstract: "Stop trusting a peer (and unpin its key).",
            usage: "pilot untrust HOST [--state-dir DIR]",
            details: "",
            implementation: .parsable(UntrustCommand.self)),
        CommandSpec(
            name: "query", kind: .command,
            abstract: "Read history from the store: one metric's series over a time range.",
            usage: "pilot query METRIC [--host H] [--label k=v]... [--since 1h | --from T --to T] [--step 5m] [--agg avg|min|max|last|count] [--json|--csv] [--state-dir DIR]",
            details: "Asks the running store on this host (pilot store, or pilot up) over its control socket. --since and --step are durations (1h, 5m); --from and --to are Unix seconds. With a --step of 5m or more, the part of the range past raw retention is read from the rollups.",
            implementation: .parsable(QueryCommand.self)),
        CommandSpec(
            name: "alerts", kind: .command,
            abstract: "List the alerts firing now (on the aggregator's host).",
            usage: "pilot alerts [--json] [--state-dir DIR]",
            details: "Asks the running aggregator (pilot aggregator, or pilot up) over its control socket; every host's alerts are also on alerts/* of the event stream.",
            implementation: .parsable(AlertsCommand.self)),
        CommandSpec(
            name: "silence", kind: .command,
            abstract: "Hold back notifications of matching alerts for a while.",
            usage: "pilot silence add MATCHER... --for 2h [--comment TEXT] | pilot silence list [--json] | pilot silence expire ID",
            details: "Asks the running alert router on this host. Matchers are NAME=VALUE (a * matches any run of characters), NAME!=VALUE or tag:NAME, NAME one of host, metric, severity, status or a label such as mount. An alert still firing when its silence ends is notified then. Silences are kept in the router's state across restarts.",
            implementation: .parsable(SilenceCommand.self)),
        CommandSpec(
            name: "publish", kind: .command,
            abstract: "Publish events to the hub: one JSON object, or one a line from stdin.",
            usage: "pilot publish TOPIC (--data JSON | --stdin) [--to HUB] [--no-ack] [--no-wait] [--state-dir DIR]   |   pilot publish --stdin (lines of TOPIC JSON)",
            details: """
                The local node numbers each message and keeps it in its on-disk spool \
                until the hub has stored it, so a hub restart or an outage loses nothing. \
                This command waits up to 5 s for the hub's verdict: it exits 1 with the \
                hub's reason when the hub refuses a message (e.g. a topic naming another \
                host), and 0 when the hub took them all or has not answered yet (then it \
                says they stay spooled). --no-wait returns once the messages are spooled; \
                --no-ack sends at most once, without the spool. A payload is a JSON object of at most \
                --max-payload-bytes (64 KiB); a topic is '/'-separated printable levels \
                without empty ones.
                """,
            implementation: .parsable(PublishCommand.self)),
        CommandSpec(
            name: "subscribe", kind: .command,
            abstract: "Print events from the hub as they arrive: '[topic] payload' a line.",
            usage: "pilot subscribe FILTER... [--from HUB] [--json] [--count N] [--timeout 30s] [--durable NAME] [--state-dir DIR]",
            details: """
                In a filter '*' matches one level and a trailing '*' one or more, so \
                'metrics/*' gets metrics/cpu/web-01 and 'metrics/*/web-01' every metric \
                of one host. Output is flushed line by line for shell pipelines. With \
                --durable NAME the hub keeps messages for NAME while it is away (within \
                its retention bounds) and resumes after the last message printed; \
                without it, messages this subscriber could not take (it fell behind, \
                or its node lost the hub for a while) are lost, and their number is \
                said on stderr. Duplicates from resends are discarded.
                """,
            implementation: .parsable(SubscribeCommand.self)),
        CommandSpec(
            name: "set-tags", kind: .command,
            abstract: "Replace this node's tags at the registry (kept across restarts).",
            usage: "pilot set-tags TAG... [--state-dir DIR]",
            details: "Tags are 1 to 32 of a-z, 0-9 and '-', at most ten. They describe a node; they never grant trust.",
            implementation: .parsable(SetTagsCommand.self)),
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
