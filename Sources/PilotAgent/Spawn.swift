#if canImport(Glibc)
public import Glibc
#endif

/// Runs a program without a shell (FoundationEssentials has no `Process`):
/// posix_spawn with stdin from /dev/null, stdout and stderr captured
/// (bounded), and a timeout after which the child is killed. Blocking: run
/// it on a thread meant for that.
public enum Spawn {
    public struct Outcome: Equatable, Sendable {
        /// The exit status, or nil when killed by a signal (or the timeout).
        public var exitCode: Int32?
        public var output: String
        public var timedOut: Bool
        public var milliseconds: Double
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// posix_spawnp of `arguments` (the first a path, or a name looked up
    /// in PATH) in a process group of its own, so that a timeout reaches
    /// what it started too, with no signal blocked and SIGPIPE at its
    /// default whatever the calling thread has. Returns the pid and
    /// posix_spawnp's status (0: started).
    public static func start(_ arguments: [String], actions: inout posix_spawn_file_actions_t) -> (pid: pid_t, status: Int32) {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let status = posix_spawnp(&pid, arguments.first ?? "", &actions, &attributes, cArguments, environ)
        return (pid, status)
    }

    /// `arguments[0]` is the program: a path, or a name looked up in PATH.
    public static func run(_ arguments: [String], timeoutMilliseconds: Int, maxOutputBytes: Int = 64 * 1024) throws(Failure) -> Outcome {
        guard let program = arguments.first, !program.isEmpty else { throw Failure(description: "no program to run") }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw Failure(description: "cannot create a pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } // the child gets them only through the dup2 below
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        let started = monotonicMilliseconds()
        let (pid, status) = start(arguments, actions: &actions)
        close(pipeFDs[1])
        guard status == 0 else {
            close(pipeFDs[0])
            throw Failure(description: "cannot run \(program): \(String(cString: strerror(status)))")
        }
        defer { close(pipeFDs[0]) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        var open = true
        while open {
            let left = timeoutMilliseconds - Int(monotonicMilliseconds() - started)
            if left <= 0 {
                timedOut = true
                break
            }
            var poller = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left, 1000)))
            if ready < 0, errno != EINTR { break }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n > 0 {
                if output.count < maxOutputBytes { output.append(contentsOf: chunk[..<min(n, maxOutputBytes - output.count)]) }
            } else if n == 0 || errno != EINTR {
                open = false
            }
        }
        // The output is closed; the program may still run (or have left a
        // child holding the pipe): wait for it within the same timeout.
        var waitStatus: Int32 = 0
        while true {
            if timedOut || Int(monotonicMilliseconds() - started) >= timeoutMilliseconds {
                timedOut = true
                kill(-pid, SIGKILL)
                while waitpid(pid, &waitStatus, 0) < 0, errno == EINTR {}
                break
            }
            let reaped = waitpid(pid, &waitStatus, WNOHANG)
            if reaped == pid || (reaped < 0 && errno != EINTR) { break }
            usleep(2_000)
        }
        let exited = waitStatus & 0x7F == 0
        return Outcome(exitCode: exited && !timedOut ? (waitStatus >> 8) & 0xFF : nil, output: String(decoding: output, as: UTF8.self),
                       timedOut: timedOut, milliseconds: monotonicMilliseconds() - started)
    }
}

func monotonicMilliseconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1e6
}
