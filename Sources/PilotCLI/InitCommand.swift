internal import ArgumentParser
internal import PilotCore
internal import PilotCrypto

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "init")

    @Option(help: ArgumentHelp("The name this node has in the fleet (default: this machine's hostname).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("The registry to register with.", valueName: "host:port"))
    var registry: String?

    @Option(help: ArgumentHelp("The beacon for NAT traversal and relay.", valueName: "host:port"))
    var beacon: String?

    @OptionGroup var state: StateOptions

    func validate() throws {
        do {
            if let hostname { _ = try Hostname.validate(hostname) }
            if let registry { _ = try Endpoint(parsing: registry) }
            if let beacon { _ = try Endpoint(parsing: beacon) }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        try Sodium.initialize()
        let directory = state.resolved
        let configPath = directory + "/" + StateDirectory.configFile
        let identityPath = directory + "/" + StateDirectory.identityFile
        do {
            try LocalFile.makeDirectory(directory, mode: 0o700)
            try LocalFile.checkWritableDirectory(directory)
        } catch {
            throw CLIError("state directory: \(error)")
        }

        var config = ConfigFile(path: configPath)
        if LocalFile.exists(configPath) {
            config = try ConfigFile(parsing: LocalFile.readText(configPath, maxBytes: ConfigFile.maxBytes), path: configPath)
        }

        let key: SigningKey
        let created: Bool
        if LocalFile.exists(identityPath) {
            key = try IdentityFile.load(from: identityPath)
            created = false
        } else {
            key = SigningKey.generate()
            try IdentityFile.save(key, to: identityPath)
            created = true
        }

        let name = try hostname ?? config.values(of: "--hostname").last ?? Hostname.validate(ProcessEnvironment.hostname)
        config.set("--hostname", name)
        if let registry { config.set("--registry", try Endpoint(parsing: registry).description) }
        if let beacon { config.set("--beacon", try Endpoint(parsing: beacon).description) }
        let header = "pilot node configuration: one flag a line; flags on the command line win."
        try LocalFile.writeAtomically(configPath, Array(config.rendered(header: header).utf8), mode: 0o600)

        Console.current.out("""
            \(created ? "Initialized" : "Updated") pilot node '\(name)' in \(directory)
              identity:    \(identityPath) (\(created ? "new" : "existing") Ed25519 key, mode 0600)
              config:      \(configPath)
              fingerprint: \(key.publicKey.fingerprint)
            public key: \(key.publicKey.base64)
            """)
    }
}
