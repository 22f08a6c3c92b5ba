internal import ArgumentParser
internal import PilotCore
internal import PilotCrypto
internal import PilotRegistry

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "init")

    @Option(help: ArgumentHelp("The name this node has in the fleet (default: this machine's hostname).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("The registry to register with.", valueName: "host:port"))
    var registry: String?

    @Option(help: ArgumentHelp("The beacon for NAT traversal and relay.", valueName: "host:port"))
    var beacon: String?

    @Option(name: .customLong("registry-key"), help: ArgumentHelp("The registry's public key (else it is pinned on first contact).", valueName: "base64"))
    var registryKey: String?

    @Option(name: .customLong("join-token"), help: ArgumentHelp("The fleet join token, if the registry asks for one.", valueName: "token"))
    var joinToken: String?

    @Option(name: .customLong("tag"), help: ArgumentHelp("A tag for this node (repeatable).", valueName: "tag"))
    var tags: [String] = []

    @OptionGroup var state: StateOptions

    func validate() throws {
        do {
            if let hostname { _ = try Hostname.validate(hostname) }
            if let registry { _ = try Endpoint(parsing: registry) }
            if let beacon { _ = try Endpoint(parsing: beacon) }
            _ = try Tags.validate(tags)
        } catch {
            throw ValidationError("\(error)")
        }
        if let registryKey { _ = try parsePublicKey(registryKey, flag: "--registry-key") }
        if let joinToken, joinToken.count < 8 || joinToken.contains(where: \.isWhitespace) {
            throw ValidationError("--join-token must be at least 8 characters without spaces")
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
        if let registryKey { config.set("--registry-key", registryKey) }
        if let joinToken { config.set("--join-token", joinToken) }
        if !tags.isEmpty { config.setAll("--tag", try Tags.validate(tags)) }
        try LocalFile.writeAtomically(configPath, Array(config.rendered(header: ConfigFile.nodeHeader).utf8), mode: 0o600)

        Console.current.out("""
            \(created ? "Initialized" : "Updated") pilot node '\(name)' in \(directory)
              identity:    \(identityPath) (\(created ? "new" : "existing") Ed25519 key, mode 0600)
              config:      \(configPath)
              fingerprint: \(key.publicKey.fingerprint)
            public key: \(key.publicKey.base64)
            """)
    }
}
