internal import ArgumentParser
internal import PilotCore
internal import PilotTransport
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `--state-dir`, shared by every command that touches a node's state.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "Node state directory (default: $PILOT_STATE_DIR, else /var/lib/pilot for root, ~/.pilot otherwise).",
        valueName: "dir"))
    var stateDir: String?

    var resolved: String {
        StateDirectory.resolve(flag: stateDir, environment: ProcessEnvironment.current, isRoot: getuidIsRoot())
    }

    /// The directory of the node the verbs talk to: the state directory,
    /// or its `node/` when that is where a node runs (`pilot up --state-dir
    /// X` keeps its node in X/node), so that every verb given the same
    /// --state-dir as `pilot up` reaches it.
    var nodeDirectory: String {
        let directory = resolved
        let nested = directory + "/node"
        if !LocalFile.exists(ControlSocket.path(stateDirectory: directory)), LocalFile.exists(ControlSocket.path(stateDirectory: nested)) {
            return nested
        }
        return directory
    }
}

/// What a verb says when no node answers for a state directory.
func noNodeRunning(_ directory: String) -> CLIError {
    CLIError("no pilot node is running for \(directory); start one with 'pilot up --state-dir \(directory)' (a fleet of one), or 'pilot agent --state-dir \(directory)' on a host of a fleet")
}

func getuidIsRoot() -> Bool { getuid() == 0 }

enum ProcessEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
