internal import ArgumentParser
internal import PilotCore
internal import PilotTransport

/// The multi-call entry point: `pilot-registry ARGS` and `pilot registry ARGS`
/// reach the same table entry.
public enum Dispatcher {
    public static func run(_ argv: [String]) async -> Int32 {
        let invokedAs = baseName(argv.first ?? "pilot")
        var arguments = Array(argv.dropFirst())

        // A link named pilot-ROLE runs that role. Any other name (pilot, or a
        // download such as pilot-linux-x86_64) dispatches on the first argument.
        if invokedAs == Pilotctl.name { return await Pilotctl.run(arguments) }
        if invokedAs.hasPrefix("pilot-"), let spec = CommandTable.spec(named: String(invokedAs.dropFirst(6))), spec.kind == .role {
            return await run(spec, arguments)
        }

        guard let first = arguments.first else {
            Console.current.out(Help.overview())
            return ExitStatus.success
        }
        arguments.removeFirst()
        switch first {
        case "-h", "--help", "help":
            guard let topic = arguments.first else {
                Console.current.out(Help.overview())
                return ExitStatus.success
            }
            guard let spec = CommandTable.spec(named: topic) else { return unknown(topic) }
            Console.current.out(Help.text(for: spec))
            return ExitStatus.success
        case "-V", "--version":
            return await run(CommandTable.spec(named: "version")!, [])
        default:
            guard let spec = CommandTable.spec(named: first) else { return unknown(first) }
            return await run(spec, arguments)
        }
    }

    static func run(_ spec: CommandSpec, _ arguments: [String]) async -> Int32 {
        guard let implementation = spec.implementation else {
            if arguments.contains(where: { $0 == "-h" || $0 == "--help" || $0 == "help" }) {
                Console.current.out(Help.text(for: spec))
                return ExitStatus.success
            }
            Console.current.err("pilot \(spec.name): this role is not built yet in pilot \(BuildInfo.version) (see 'pilot \(spec.name) --help')")
            return ExitStatus.unavailable
        }
        return await implementation.run("pilot \(spec.name)", arguments)
    }

    /// Before anything else, on the main thread (`run` is async and may
    /// start on a pool thread, whose first allocation would have made a
    /// second malloc arena already): the agent runs on every host, and
    /// trades malloc's per-thread arenas (speed under contention it does
    /// not have) for a smaller footprint.
    public static func prepareProcess(_ argv: [String]) {
        let invokedAs = baseName(argv.first ?? "pilot")
        if invokedAs == "pilot-agent" || (!invokedAs.hasPrefix("pilot-") && argv.dropFirst().first == "agent") { preferSmallHeap() }
    }

    static func unknown(_ word: String) -> Int32 {
        let what = word.hasPrefix("-") ? "unknown option '\(word)'" : "unknown role or command '\(word)'"
        let names = CommandTable.all.map(\.name).joined(separator: ", ")
        Console.current.err("pilot: \(what); expected one of: \(names) (see 'pilot --help')")
        return ExitStatus.usage
    }

    static func baseName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

/// Parses and runs one ArgumentParser command, turning every error into
/// one line on stderr and an exit status; help goes to stdout.
func runParsable<Command: AsyncParsableCommand>(_: Command.Type, name: String, _ arguments: [String]) async -> Int32 {
    var fromConfig: [String] = []
    var config: ConfigFile?
    if Command.self is any ReadsNodeConfig.Type {
        do {
            config = try configFile(arguments)
            fromConfig = config?.arguments ?? []
        } catch {
            Console.current.err("\(name): \(error)")
            return ExitStatus.failure
        }
    }
    var parsing = true
    do {
        var command = try Command.parseAsRoot(fromConfig + arguments) // also runs validate()
        parsing = false
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run() // ArgumentParser's own help command
        }
        return ExitStatus.success
    } catch let error as CLIError {
        Console.current.err("\(name): \(error.description)")
        return error.exitCode
    } catch {
        let code = Command.exitCode(for: error)
        if code == .success {
            Console.current.out(Command.fullMessage(for: error, columns: 80))
            return ExitStatus.success
        }
        // ArgumentParser may add hint lines; the first line is the error itself.
        // Every error type of ours describes itself in one line naming what was wrong.
        let message = Command.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        if parsing || code == .validationFailure {
            if let config, let line = culprit(Command.self, config, arguments) {
                Console.current.err("\(name): \(config.path):\(line): \(message)")
                return ExitStatus.usage
            }
            Console.current.err("\(name): \(message) (see '\(name) --help')")
            return ExitStatus.usage
        }
        Console.current.err("\(name): \(message)")
        return ExitStatus.failure
    }
}

/// The config line that makes parsing fail: the one entry without which
/// the config and the command line parse (nil when no single line is to
/// blame, e.g. two lines that conflict).
func culprit<Command: AsyncParsableCommand>(_: Command.Type, _ config: ConfigFile, _ arguments: [String]) -> Int? {
    for (index, entry) in config.entries.enumerated() {
        var without = config.entries
        without.remove(at: index)
        let rest = without.flatMap { [$0.flag] + ($0.value.map { [$0] } ?? []) }
        if (try? Command.parseAsRoot(rest + arguments)) != nil { return entry.line }
    }
    return nil
}
