internal import ArgumentParser
internal import Logging
internal import PilotCore
internal import PilotCrypto

/// Commands that run a node read its config file first: one flag a line,
/// placed before the command line's own flags so that the command line
/// wins (a later value of a single-valued flag replaces an earlier one).
protocol ReadsNodeConfig {}

/// The config arguments for an argument list: `--config FILE` if given,
/// else `STATE/config` when it exists.
func configArguments(_ arguments: [String]) throws -> [String] {
    try configFile(arguments)?.arguments ?? []
}

/// The value of `FLAG VALUE` or `FLAG=VALUE` in an argument list, read
/// before ArgumentParser sees the list.
func flagValue(_ flag: String, in arguments: [String]) -> String? {
    for (index, argument) in arguments.enumerated() {
        if argument == flag, index + 1 < arguments.count { return arguments[index + 1] }
        if argument.hasPrefix(flag + "=") { return String(argument.dropFirst(flag.count + 1)) }
    }
    return nil
}

/// The config file that applies to an argument list, if any.
func configFile(_ arguments: [String]) throws -> ConfigFile? {
    let explicit = flagValue("--config", in: arguments)
    let directory = StateDirectory.resolve(flag: flagValue("--state-dir", in: arguments), environment: ProcessEnvironment.current, isRoot: getuidIsRoot())
    let path = explicit ?? directory + "/" + StateDirectory.configFile
    guard explicit != nil || LocalFile.exists(path) else { return nil }
    return try ConfigFile(parsing: LocalFile.readText(path, maxBytes: ConfigFile.maxBytes), path: path)
}

/// `--log-level`, shared by the long-running roles.
struct LogOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var level: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: level) != nil else {
            throw ValidationError("invalid log level '\(level)': use trace, debug, info, notice, warning, error or critical")
        }
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }
}

func parseEndpoint(_ text: String, flag: String, listening: Bool = false) throws -> Endpoint {
    do { return try Endpoint(parsing: text, listening: listening) } catch { throw ValidationError("\(flag): \(error)") }
}

func parsePublicKey(_ text: String, flag: String) throws -> PublicKey {
    do { return try PublicKey(base64: text) } catch { throw ValidationError("\(flag): \(error)") }
}

/// The node's identity, or a clear error naming `pilot init`.
func loadIdentity(stateDirectory: String) throws -> SigningKey {
    try Sodium.initialize()
    let path = stateDirectory + "/" + StateDirectory.identityFile
    guard LocalFile.exists(path) else {
        throw CLIError("no identity in \(stateDirectory); create one with 'pilot init --state-dir \(stateDirectory)'")
    }
    return try IdentityFile.load(from: path)
}

/// Loads the identity, creating it on first start (for the plain servers:
/// registry and beacon keep one key so that nodes can pin it).
func loadOrCreateIdentity(stateDirectory: String) throws -> SigningKey {
    try Sodium.initialize()
    do {
        try LocalFile.makeDirectory(stateDirectory, mode: 0o700)
    } catch {
        throw CLIError("state directory: \(error)")
    }
    let path = stateDirectory + "/" + StateDirectory.identityFile
    if LocalFile.exists(path) { return try IdentityFile.load(from: path) }
    let key = SigningKey.generate()
    try IdentityFile.save(key, to: path)
    return key
}

/// A flag that takes time: a number of seconds (`1.5`) or a duration
/// (`30s`, `2m`, `1h`), as `DurationText` reads it.
struct Seconds: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var value: Double
    init(_ value: Double) { self.value = value }
    init?(argument: String) {
        if let seconds = Double(argument), seconds.isFinite, argument.allSatisfy({ $0.isNumber || $0 == "." }) {
            value = seconds
        } else if let seconds = try? DurationText.seconds(argument) {
            value = Double(seconds)
        } else {
            return nil
        }
    }
    var description: String { value == value.rounded() ? "\(Int64(value))s" : "\(value)s" }
    var defaultValueDescription: String { description }
    var milliseconds: Int64 { Int64((value * 1000).rounded()) }
    var wholeSeconds: Int64 { Int64(value.rounded(.up)) }
}

func parseDuration(_ text: String, flag: String) throws -> Int64 {
    do {
        let seconds = try DurationText.seconds(text)
        guard seconds > 0 else { throw ValidationError("\(flag): the duration must be more than zero") }
        return seconds
    } catch let error as ParseError {
        throw ValidationError("\(flag): \(error)")
    }
}
