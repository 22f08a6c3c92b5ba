internal import ArgumentParser
internal import PilotCore
internal import PilotTransport
internal import PilotCrypto
internal import PilotNode
internal import PilotRegistry
internal import PilotRoles

/// `pilot registry [OPTIONS]` runs the registry; `pilot registry revoke HOST`
/// is the operator's one subcommand.
struct RegistryCommand: AsyncParsableCommand {
    static let configuration: CommandConfiguration = {
        var configuration = CommandTable.configuration(for: "registry")
        configuration.subcommands = [Revoke.self]
        return configuration
    }()

    @Option(help: ArgumentHelp("Where to listen for nodes (port 0 picks one; it is written to STATE/registry.addr).", valueName: "host:port"))
    var listen = "0.0.0.0:9000"

    @Option(help: ArgumentHelp("The read-only status page and /api/nodes, or 'off'.", valueName: "host:port"))
    var http = "127.0.0.1:9080"

    @OptionGroup(title: "Status page access (TLS and a token; required beyond loopback and with --join-token)") var httpAccess: HTTPFlags

    @Option(name: .customLong("join-token"), help: ArgumentHelp("Only nodes proving this fleet token may register, and only registered nodes may look up the fleet: @FILE, env:NAME (default $PILOT_JOIN_TOKEN), or inline.", valueName: "@file"))
    var joinToken: String?

    @Option(name: .customLong("offline-after"), help: ArgumentHelp("Time without a keepalive after which a node is offline (e.g. 2m).", valueName: "duration"))
    var offlineAfter = Seconds(120)

    @Option(help: ArgumentHelp("Largest accepted difference between a request's timestamp and this clock (e.g. 5m).", valueName: "duration"))
    var skew = Seconds(300)

    @Option(name: .customLong("connections-per-ip"), help: ArgumentHelp("Open connections allowed from one address.", valueName: "n"))
    var connectionsPerIP = 4096

    @Option(name: .customLong("registrations-burst"), help: ArgumentHelp("New keys one address may register at once (a whole office behind NAT).", valueName: "n"))
    var registrationsBurst = 1000

    @Option(name: .customLong("registrations-per-minute"), help: ArgumentHelp("New keys one address may register per minute after the burst.", valueName: "n"))
    var registrationsPerMinute = 600

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("Close a node connection silent this long (e.g. 5m).", valueName: "duration"))
    var idleTimeout = Seconds(300)

    @Option(name: .customLong("beacon-ticket-lifetime"), help: ArgumentHelp(
        "How long the ticket a node shows the beacon lasts (e.g. 30m); nodes renew it at half of that.", valueName: "duration"))
    var beaconTicketLifetime = Seconds(1800)

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        _ = try parseEndpoint(listen, flag: "--listen", listening: true)
        if http != "off" { try httpAccess.check(try parseEndpoint(http, flag: "--http", listening: true), stateDirectory: state.resolved) }
        guard offlineAfter.value >= 1 else { throw ValidationError("--offline-after must be at least 1 second") }
        guard skew.value >= 1 else { throw ValidationError("--skew must be at least 1 second") }
        guard connectionsPerIP >= 1, registrationsBurst >= 1, registrationsPerMinute >= 0 else {
            throw ValidationError("limits must be positive")
        }
        guard idleTimeout.value >= 5 else { throw ValidationError("--idle-timeout must be at least 5 seconds") }
        guard (2...86_400).contains(beaconTicketLifetime.value) else {
            throw ValidationError("--beacon-ticket-lifetime must be between 2 seconds and 1 day")
        }
    }

    func run() async throws {
        let directory = state.resolved
        let identity = try loadOrCreateIdentity(stateDirectory: directory)
        var options = RegistryService.Options(stateDirectory: directory)
        options.listen = try parseEndpoint(listen, flag: "--listen", listening: true)
        options.http = http == "off" ? nil : try parseEndpoint(http, flag: "--http", listening: true)
        options.httpAccess = try httpAccess.access(for: options.http, stateDirectory: directory)
        options.engine.joinToken = try JoinToken.resolve(joinToken)
        options.engine.offlineAfterMs = offlineAfter.milliseconds
        options.engine.skewMs = skew.milliseconds
        options.engine.registrationBurst = registrationsBurst
        options.engine.registrationsPerMinute = registrationsPerMinute
        options.engine.beaconTicketLifetimeMs = beaconTicketLifetime.milliseconds
        options.connectionsPerAddress = connectionsPerIP
        options.idleTimeoutSeconds = idleTimeout.wholeSeconds
        let logger = log.logger("pilot.registry")
        try await Daemon.run(logger: logger) {
            let service: RegistryService
            do { service = try RegistryService(options: options, identity: identity, logger: logger) } catch {
                throw CLIError("cannot open the registry state in \(directory): \(error)")
            }
            do { try await service.start() } catch {
                throw CLIError("cannot listen on \(listen) or \(http): \(error)")
            }
            Console.current.out("registry listening on \(service.boundAddress), key \(identity.publicKey.base64)")
            return [service]
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Release a hostname so another key may claim it (run on the registry host).",
            discussion: "For a host that was reinstalled with a new key. The old key keeps its address; the name is free.")

        @Argument(help: ArgumentHelp("The hostname to release.", valueName: "host"))
        var hostname: String

        @OptionGroup var state: StateOptions

        func run() async throws {
            let directory = state.resolved
            let path = ControlSocket.path(stateDirectory: directory, name: "registry.sock")
            let reply: JSONValue
            do {
                reply = try ControlClient.call(path: path, JSONObject([("cmd", .string("revoke")), ("hostname", .string(hostname))]))
            } catch {
                guard case .notRunning = error else { throw CLIError(error.description) }
                return try revokeOffline(directory)
            }
            guard reply["ok"] == .bool(true) else { throw CLIError(reply["error"]?.stringValue ?? "revoke failed") }
            Console.current.out("released '\(hostname)' (its key keeps address \(reply["address"]?.stringValue ?? "?"))")
        }

        /// No registry running here: change its state file directly.
        private func revokeOffline(_ directory: String) throws {
            do {
                let store = try RegistryStore(path: directory + "/registry.db")
                var engine = RegistryEngine(configuration: .init(), records: try store.loadAll(), now: 0)
                let record = try engine.revoke(hostname: hostname)
                try store.save(record)
                Console.current.out("released '\(hostname)' in \(directory)/registry.db (its key keeps address \(record.address))")
            } catch let error as RegistryError {
                throw CLIError("\(error)")
            }
        }
    }
}
