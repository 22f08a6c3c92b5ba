internal import ArgumentParser
internal import PilotCore
internal import PilotCrypto
internal import PilotTransport
internal import PilotNode
internal import PilotRoles

/// `pilot beacon [OPTIONS]` runs the beacon; `pilot beacon status` shows its counters.
struct BeaconCommand: AsyncParsableCommand {
    static let configuration: CommandConfiguration = {
        var configuration = CommandTable.configuration(for: "beacon")
        configuration.subcommands = [Status.self]
        return configuration
    }()

    @Option(help: ArgumentHelp("Where to listen (UDP; port 0 picks one, written to STATE/beacon.addr).", valueName: "host:port"))
    var listen = "0.0.0.0:9001"

    @Option(help: ArgumentHelp("The registry whose nodes this beacon serves; its key is pinned on first contact (STATE/registry.key).", valueName: "host:port"))
    var registry: String?

    @Option(name: .customLong("registry-key"), help: ArgumentHelp("The registry's public key (as 'pilot registry' prints it), instead of learning it.", valueName: "base64"))
    var registryKey: String?

    @Option(name: .customLong("relay-datagrams-per-second"), help: ArgumentHelp("Relay budget of one sending node, datagrams per second.", valueName: "n"))
    var relayDatagrams = 2000.0

    @Option(name: .customLong("relay-bytes-per-second"), help: ArgumentHelp("Relay budget of one sending node, bytes per second.", valueName: "n"))
    var relayBytes = 2_000_000.0

    @Option(name: .customLong("relay-target-datagrams-per-second"), help: ArgumentHelp("Relay budget toward one node, from all senders together, datagrams per second.", valueName: "n"))
    var targetDatagrams = 8000.0

    @Option(name: .customLong("relay-target-bytes-per-second"), help: ArgumentHelp("Relay budget toward one node, from all senders together, bytes per second.", valueName: "n"))
    var targetBytes = 8_000_000.0

    @Option(help: ArgumentHelp("Largest accepted difference between this clock and a node's timestamps or the registry's ticket times (e.g. 5m).", valueName: "duration"))
    var skew = Seconds(300)

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        _ = try parseEndpoint(listen, flag: "--listen", listening: true)
        guard relayDatagrams > 0, relayBytes >= 1280, targetDatagrams > 0, targetBytes >= 1280 else {
            throw ValidationError("relay budgets must be positive (bytes at least 1280)")
        }
        guard skew.value >= 1 else { throw ValidationError("--skew must be at least 1 second") }
        if let registry { _ = try parseEndpoint(registry, flag: "--registry", listening: false) }
        if let registryKey { _ = try parsePublicKey(registryKey, flag: "--registry-key") }
    }

    func run() async throws {
        var options = BeaconService.Options(stateDirectory: state.resolved)
        // Here, not in validate(): that runs for `pilot beacon status` too.
        guard registry != nil || registryKey != nil || (try? LocalFile.readText(options.pinPath, maxBytes: 1024)) != nil else {
            throw CLIError("the beacon serves only nodes its registry vouches for: give --registry HOST:PORT (its key is pinned on first contact), --registry-key KEY, or put the key in \(options.pinPath)",
                           exitCode: ExitStatus.usage)
        }
        options.listen = try parseEndpoint(listen, flag: "--listen", listening: true)
        options.limits.relayDatagramsPerSecond = relayDatagrams
        options.limits.relayBytesPerSecond = relayBytes
        options.limits.targetDatagramsPerSecond = targetDatagrams
        options.limits.targetBytesPerSecond = targetBytes
        options.limits.skewMs = skew.milliseconds
        options.registry = try registry.map { try parseEndpoint($0, flag: "--registry", listening: false) }
        options.registryKey = try registryKey.map { try parsePublicKey($0, flag: "--registry-key") }
        let logger = log.logger("pilot.beacon")
        try await Daemon.run(logger: logger) {
            let service = BeaconService(options: options, logger: logger)
            do { try await service.start() } catch {
                throw CLIError("cannot listen on \(listen): \(error)")
            }
            Console.current.out("beacon listening on \(service.boundAddress)")
            return [service]
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show what a running beacon has seen and relayed.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var state: StateOptions

        func run() async throws {
            let path = ControlSocket.path(stateDirectory: state.resolved, name: "beacon.sock")
            let reply: JSONValue
            do { reply = try ControlClient.call(path: path, JSONObject([("cmd", .string("status"))])) } catch {
                throw CLIError("no beacon is running for \(state.resolved) (\(error))")
            }
            if json { return Console.current.out(reply.description) }
            func number(_ key: String) -> String { reply[key]?.int64Value.map { String($0) } ?? "0" }
            let registry = reply["registry_key"]?.stringValue.flatMap { try? PublicKey(base64: $0) }.map(\.fingerprint) ?? "not known yet (serving no one)"
            var dropped = ""
            if case .object(let reasons)? = reply["dropped"] {
                dropped = reasons.map { "\($0.key) \($0.value.int64Value ?? 0)" }.joined(separator: ", ")
            }
            Console.current.out("""
                beacon \(reply["address"]?.stringValue ?? "?"): \(number("nodes")) nodes, \(number("hellos")) hellos, \(number("punches")) introductions
                registry key \(registry)
                relayed \(number("relayed_datagrams")) datagrams, \(number("relayed_bytes")) bytes
                dropped \(dropped.isEmpty ? "nothing" : dropped)
                """)
        }
    }
}
