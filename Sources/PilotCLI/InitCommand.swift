internal import ArgumentParser
internal import PilotCore
internal import PilotCrypto
internal import PilotRegistry
internal import PilotRoles

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "init")

    @OptionGroup var settings: NodeSettings
    @OptionGroup var state: StateOptions

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

        let name = try settings.hostname ?? config.values(of: "--hostname").last ?? Hostname.validate(ProcessEnvironment.hostname)
        config.set("--hostname", name)
        if let registry = settings.registry { config.set("--registry", try Endpoint(parsing: registry).description) }
        if let beacon = settings.beacon { config.set("--beacon", try Endpoint(parsing: beacon).description) }
        if let registryKey = settings.registryKey { config.set("--registry-key", registryKey) }
        // A file or variable is kept as such (read at each start); the token is checked now.
        if let joinToken = settings.joinToken {
            _ = try JoinToken.resolve(joinToken, warn: { _ in })
            config.set("--join-token", joinToken)
        }
        if let hub = settings.hub { config.set("--hub", hub) }
        if !settings.tags.isEmpty { config.setAll("--tag", try Tags.validate(settings.tags)) }
        try LocalFile.writeAtomically(configPath, Array(config.rendered(header: ConfigFile.nodeHeader).utf8), mode: 0o600)
        // For a role's HTTPS beyond loopback; the fingerprint is what a client pins.
        let tls = SelfSignedCertificate.files(in: directory)
        let certificate: (fingerprint: String, created: Bool)
        do { certificate = try SelfSignedCertificate.ensure(in: directory, hostname: name) } catch { throw CLIError("HTTPS certificate: \(error)") }

        Console.current.out("""
            \(created ? "Initialized" : "Updated") pilot node '\(name)' in \(directory)
              identity:    \(identityPath) (\(created ? "new" : "existing") Ed25519 key, mode 0600)
              config:      \(configPath)
              fingerprint: \(key.publicKey.fingerprint)
              tls:         \(tls.certificate) and \(tls.key) (\(certificate.created ? "new self-signed ECDSA P-256, key mode 0600" : "existing"))
              tls sha256:  \(certificate.fingerprint)
            public key: \(key.publicKey.base64)
            """)
    }
}
