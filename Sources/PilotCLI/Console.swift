#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Where commands write. Real runs go to stdout/stderr, flushed per line so
/// pipelines see output at once; tests swap in a capturing console.
public struct Console: Sendable {
    public var out: @Sendable (String) -> Void
    public var err: @Sendable (String) -> Void

    public init(out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void) {
        self.out = out
        self.err = err
    }

    public static let standard = Console(
        out: { text in writeAll(STDOUT_FILENO, text) },
        err: { text in writeAll(STDERR_FILENO, text) }
    )

    @TaskLocal public static var current: Console = .standard

    private static func writeAll(_ fd: Int32, _ text: String) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// A failure the user can act on: printed as one line, `pilot VERB: message`.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    var exitCode: Int32 = ExitStatus.failure
    init(_ description: String, exitCode: Int32 = ExitStatus.failure) {
        self.description = description
        self.exitCode = exitCode
    }
}

enum ExitStatus {
    static let success: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64        // EX_USAGE
    static let unavailable: Int32 = 69  // EX_UNAVAILABLE: a role not built yet
}
