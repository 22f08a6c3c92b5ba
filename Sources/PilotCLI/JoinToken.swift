internal import ArgumentParser
internal import PilotAlerts
internal import PilotCore

/// The fleet's join token, from where it is kept out of `ps`: `@FILE` (its
/// first line), `env:NAME`, or `PILOT_JOIN_TOKEN` when no flag is given. A
/// token written inline still works, with a warning that every local user
/// can read it in the process list.
enum JoinToken {
    static let variable = "PILOT_JOIN_TOKEN"

    /// The token, checked (8 characters or more, no spaces), or nil for none.
    static func resolve(_ text: String?, environment: [String: String] = ProcessEnvironment.current,
                        warn: (String) -> Void = { Console.current.err($0) }) throws -> String? {
        let token: String
        if let text {
            let source = SecretSource(text)
            if source.isInline { warn("warning: --join-token is written inline, so ps shows it to every local user: use --join-token @FILE or \(variable)") }
            do { token = try source.resolve(environment: { environment[$0] }) { path in try LocalFile.readText(path, maxBytes: 4096) } } catch {
                throw CLIError("--join-token: \(error.reason) (\(source))", exitCode: ExitStatus.usage)
            }
        } else if let value = environment[variable], !value.isEmpty {
            token = value
        } else {
            return nil
        }
        guard token.count >= 8, !token.contains(where: \.isWhitespace) else {
            throw CLIError("--join-token must be at least 8 characters without spaces", exitCode: ExitStatus.usage)
        }
        return token
    }
}
