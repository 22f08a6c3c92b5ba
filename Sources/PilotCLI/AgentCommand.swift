internal import ArgumentParser
internal import PilotCore
internal import PilotRegistry
internal import PilotRoles

struct AgentCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "agent")

    @OptionGroup var settings: NodeSettings

    @Option(name: .customLong("tunnel-listen"), help: ArgumentHelp("The UDP socket for tunnels (port 0 picks one).", valueName: "host:port"))
    var tunnelListen = "0.0.0.0:0"

    @Option(name: .customLong("advertise"), help: ArgumentHelp("An endpoint peers should try, instead of this host's interface addresses (repeatable).", valueName: "host:port"))
    var advertise: [String] = []

    @Option(help: ArgumentHelp("Seconds between keepalives to the registry.", valueName: "seconds"))
    var keepalive: Int64 = 30

    @Option(help: ArgumentHelp("A config file of one flag a line (default: STATE/config).", valueName: "file"))
    var config: String?

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        _ = try parseEndpoint(tunnelListen, flag: "--tunnel-listen", listening: true)
        for endpoint in advertise { _ = try parseEndpoint(endpoint, flag: "--advertise") }
        guard (1...3600).contains(keepalive) else { throw ValidationError("--keepalive must be between 1 and 3600 seconds") }
    }

    func run() async throws {
        let directory = state.resolved
        let identity = try loadIdentity(stateDirectory: directory)
        var options = AgentService.Options(
            stateDirectory: directory, configPath: config ?? directory + "/" + StateDirectory.configFile,
            hostname: settings.hostname ?? ProcessEnvironment.hostname)
        options.registry = try settings.registry.map { try parseEndpoint($0, flag: "--registry") }
        options.registryKey = try settings.registryKey.map { try parsePublicKey($0, flag: "--registry-key") }
        options.joinToken = settings.joinToken
        options.tags = try Tags.validate(settings.tags)
        options.keepaliveSeconds = keepalive
        options.tunnelListen = try parseEndpoint(tunnelListen, flag: "--tunnel-listen", listening: true)
        options.advertise = try advertise.map { try parseEndpoint($0, flag: "--advertise") }
        options.beacon = try settings.beacon.map { try parseEndpoint($0, flag: "--beacon") }
        let service = AgentService(options: options, identity: identity, logger: log.logger("pilot.agent"))
        do { try await service.start() } catch {
            throw CLIError("cannot start the node: \(error)")
        }
        try await service.run()
    }
}
