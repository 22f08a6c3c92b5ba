internal import ArgumentParser
internal import PilotCore
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

    @Option(name: .customLong("relay-datagrams-per-second"), help: ArgumentHelp("Relay budget of one node, datagrams per second.", valueName: "n"))
    var relayDatagrams = 2000.0

    @Option(name: .customLong("relay-bytes-per-second"), help: ArgumentHelp("Relay budget of one node, bytes per second.", valueName: "n"))
    var relayBytes = 2_000_000.0

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        _ = try parseEndpoint(listen, flag: "--listen", listening: true)
        guard relayDatagrams > 0, relayBytes >= 1280 else { throw ValidationError("relay budgets must be positive (bytes at least 1280)") }
    }

    func run() async throws {
        var options = BeaconService.Options(stateDirectory: state.resolved)
        options.listen = try parseEndpoint(listen, flag: "--listen", listening: true)
        options.limits.relayDatagramsPerSecond = relayDatagrams
        options.limits.relayBytesPerSecond = relayBytes
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
            Console.current.out("""
                beacon \(reply["address"]?.stringValue ?? "?"): \(number("nodes")) nodes, \(number("hellos")) hellos, \(number("punches")) introductions
                relayed \(number("relayed_datagrams")) datagrams, \(number("relayed_bytes")) bytes
                """)
        }
    }
}
