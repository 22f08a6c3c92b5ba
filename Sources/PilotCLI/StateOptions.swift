internal import ArgumentParser
internal import PilotCore
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
