internal import ArgumentParser
internal import PilotAlerts
internal import PilotCore
internal import PilotRegistry

/// The settings of a node: what `pilot init` writes to the config file and
/// what `pilot agent` (and every node daemon) reads back from it.
struct NodeSettings: ParsableArguments {
    @Option(help: ArgumentHelp("The name this node has in the fleet (default: this machine's hostname).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("The registry to register with.", valueName: "host:port"))
    var registry: String?

    @Option(name: .customLong("registry-key"), help: ArgumentHelp("The registry's public key (else it is pinned on first contact).", valueName: "base64"))
    var registryKey: String?

    @Option(name: .customLong("join-token"), help: ArgumentHelp("The fleet join token, if the registry asks for one: @FILE, env:NAME (default $PILOT_JOIN_TOKEN), or inline.", valueName: "@file"))
    var joinToken: String?

    @Option(help: ArgumentHelp("The beacon for NAT traversal and relay.", valueName: "host:port"))
    var beacon: String?

    @Option(help: ArgumentHelp("The fleet's event hub (a hostname), the default of publish and subscribe.", valueName: "name"))
    var hub: String?

    @Option(name: .customLong("tag"), help: ArgumentHelp("A tag for this node (repeatable).", valueName: "tag"))
    var tags: [String] = []

    func validate() throws {
        do {
            if let hostname { _ = try Hostname.validate(hostname) }
            _ = try Tags.validate(tags)
            if let hub { _ = try Hostname.validate(hub) }
        } catch {
            throw ValidationError("\(error)")
        }
        if let registry { _ = try parseEndpoint(registry, flag: "--registry") }
        if let beacon { _ = try parseEndpoint(beacon, flag: "--beacon") }
        if let registryKey { _ = try parsePublicKey(registryKey, flag: "--registry-key") }
        if let joinToken, SecretSource(joinToken).isInline, joinToken.count < 8 || joinToken.contains(where: \.isWhitespace) {
            throw ValidationError("--join-token must be at least 8 characters without spaces")
        }
    }
}
