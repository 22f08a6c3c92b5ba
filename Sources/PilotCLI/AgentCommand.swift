internal import ArgumentParser
internal import PilotCore
internal import PilotRegistry
internal import PilotRoles

struct AgentCommand: AsyncParsableCommand, ReadsNodeConfig {
    static let configuration = CommandTable.configuration(for: "agent")

    @Option(help: ArgumentHelp("The name this node has in the fleet (default: this machine's hostname).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("The registry to register with.", valueName: "host:port"))
    var registry: String?

    @Option(name: .customLong("registry-key"), help: ArgumentHelp("The registry's public key, instead of pinning it on first contact.", valueName: "base64"))
    var registryKey: String?

    @Option(name: .customLong("join-token"), help: ArgumentHelp("The fleet join token the registry asks for.", valueName: "token"))
    var joinToken: String?

    @Option(help: ArgumentHelp("The beacon for NAT traversal (used by tunnels).", valueName: "host:port"))
    var beacon: String?

    @Option(name: .customLong("tag"), help: ArgumentHelp("A tag for this node (repeatable; pilot set-tags changes them at run time).", valueName: "tag"))
    var tags: [String] = []

    @Option(help: ArgumentHelp("Seconds between keepalives to the registry.", valueName: "seconds"))
    var keepalive: Int64 = 30

    @Option(help: ArgumentHelp("A config file of one flag a line (default: STATE/config).", valueName: "file"))
    var config: String?

    @OptionGroup var state: StateOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        if let hostname { do { _ = try Hostname.validate(hostname) } catch { throw ValidationError("\(error)") } }
        if let registry { _ = try parseEndpoint(registry, flag: "--registry") }
        if let beacon { _ = try parseEndpoint(beacon, flag: "--beacon") }
        if let registryKey { _ = try parsePublicKey(registryKey, flag: "--registry-key") }
        do { _ = try Tags.validate(tags) } catch { throw ValidationError("\(error)") }
        guard (1...3600).contains(keepalive) else { throw ValidationError("--keepalive must be between 1 and 3600 seconds") }
    }

    func run() async throws {
        let directory = state.resolved
        let identity = try loadIdentity(stateDirectory: directory)
        var options = AgentService.Options(
            stateDirectory: directory, configPath: config ?? directory + "/" + StateDirectory.configFile,
            hostname: hostname ?? ProcessEnvironment.hostname)
        options.registry = try registry.map { try parseEndpoint($0, flag: "--registry") }
        options.registryKey = try registryKey.map { try parsePublicKey($0, flag: "--registry-key") }
        options.joinToken = joinToken
        options.tags = try Tags.validate(tags)
        options.keepaliveSeconds = keepalive
        let service = AgentService(options: options, identity: identity, logger: log.logger("pilot.agent"))
        do { try await service.start() } catch {
            throw CLIError("cannot start the node: \(error)")
        }
        try await service.run()
    }
}
