#if canImport(Glibc)
internal import Glibc
#endif
internal import ArgumentParser
internal import PilotAlerts
internal import PilotCore
internal import PilotCrypto
internal import PilotRoles

/// Who may use the aggregator's HTTP server (the dashboard and its API):
/// tokens from files or the environment, never argv, and TLS for any bind
/// beyond loopback.
struct HTTPFlags: ParsableArguments {
    @Option(name: .customLong("http-token"), help: ArgumentHelp(
        "The token every HTTP request needs, as @FILE or env:NAME (required, with TLS, on a non-loopback --http).", valueName: "@file"))
    var token: String?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp(
        "PEM certificate (chain) for HTTPS, e.g. ECDSA P-256 (default beyond loopback: STATE/tls.crt and STATE/tls.key, which pilot init makes).",
        valueName: "file"))
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    func validate() throws {
        for (flag, value) in [("--http-token", token)] {
            if let value, SecretSource(value).isInline {
                throw ValidationError("\(flag) takes @FILE or env:NAME, so that ps does not show the token")
            }
        }
        if (tlsCertificate == nil) != (tlsKey == nil) { throw ValidationError("give --tls-cert and --tls-key together") }
    }

    /// `--tls-cert`/`--tls-key`, else, beyond loopback, the pair `pilot
    /// init` made in the state directory (`pilot up` makes its own first).
    func tlsFiles(for endpoint: Endpoint, stateDirectory: String?) -> (certificate: String, key: String)? {
        if let tlsCertificate, let tlsKey { return (tlsCertificate, tlsKey) }
        guard !HTTPAccess.isLoopback(endpoint.host), let stateDirectory else { return nil }
        return SelfSignedCertificate.existing(in: stateDirectory)
    }

    /// What `validate` can say before any file is read: a bind beyond
    /// loopback without TLS or a token. `makesCertificate`: the command
    /// makes the pair in its state directory when there is none.
    func check(_ endpoint: Endpoint, flag: String = "--http", stateDirectory: String?, makesCertificate: Bool = false) throws {
        let planned = HTTPAccess(token: token == nil ? nil : "-", tls: tlsFiles(for: endpoint, stateDirectory: stateDirectory) ?? (makesCertificate ? ("", "") : nil))
        do { try planned.validate(endpoint, flag: flag, stateDirectory: stateDirectory) } catch { throw ValidationError("\(error)") }
    }

    /// The access rules with the tokens read, checked against the bind.
    func access(for endpoint: Endpoint?, flag: String = "--http", stateDirectory: String?, admin: AdminTokenFlag? = nil,
                generatedAdminToken: String? = nil) throws -> HTTPAccess {
        var access = HTTPAccess(token: try Self.read(token, "--http-token"), adminToken: try Self.read(admin?.adminToken, "--http-admin-token") ?? generatedAdminToken)
        if let endpoint {
            access.tls = tlsFiles(for: endpoint, stateDirectory: stateDirectory)
            do { try access.validate(endpoint, flag: flag, stateDirectory: stateDirectory) } catch { throw CLIError("\(error)", exitCode: ExitStatus.usage) }
        }
        return access
    }

    static func read(_ text: String?, _ flag: String) throws -> String? {
        guard let text else { return nil }
        do {
            return try SecretSource(text).resolve(environment: { ProcessEnvironment.current[$0] }) { path in try LocalFile.readText(path, maxBytes: 64 << 10) }
        } catch {
            throw CLIError("\(flag): \(error.reason) (\(SecretSource(text)))", exitCode: ExitStatus.usage)
        }
    }

    /// `pilot up`'s admin token: made once in its state directory (0600),
    /// so a newcomer's dashboard can set silences with the token it prints.
    static func adminTokenFile(in directory: String) throws -> (path: String, token: String) {
        let path = directory + "/http-admin.token"
        if LocalFile.exists(path) {
            let text = try LocalFile.readText(path, maxBytes: 4096)
            let token = String(Substring(text.split(whereSeparator: \.isNewline).first ?? "").trimmingSpaces)
            if !token.isEmpty { return (path, token) }
        }
        let token = Hex.encode(SecureRandom.bytes(24))
        try LocalFile.writeAtomically(path, Array((token + "\n").utf8), mode: 0o600)
        return (path, token)
    }
}

/// The dashboard's writer (the aggregator and pilot up only).
struct AdminTokenFlag: ParsableArguments {
    @Option(name: .customLong("http-admin-token"), help: ArgumentHelp(
        "The token that may also write (add and expire silences from the dashboard), as @FILE or env:NAME.", valueName: "@file"))
    var adminToken: String?

    func validate() throws {
        if let adminToken, SecretSource(adminToken).isInline {
            throw ValidationError("--http-admin-token takes @FILE or env:NAME, so that ps does not show the token")
        }
    }
}
