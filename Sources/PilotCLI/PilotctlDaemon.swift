#if canImport(Glibc)
internal import Glibc
#endif
internal import PilotCore
internal import PilotTransport

/// `pilotctl daemon start|stop|status`: the node in the background, as
/// Pilot Protocol's daemon is. It is `pilot agent --no-metrics` (a node
/// that collects nothing itself: the guide's scripts publish the metrics)
/// in a session of its own, its output appended to STATE/daemon.log and
/// its pid in STATE/daemon.pid.
enum PilotctlDaemon {
    enum Action: String, Sendable { case start, stop, status }

    static let logFile = "daemon.log"
    static let pidFile = "daemon.pid"
    /// How long `start` waits for the registration, and `stop` for the exit.
    static let startSeconds = 30.0
    static let stopSeconds = 15.0

    static func run(_ action: Action, _ arguments: [String]) async -> Int32 {
        let json = arguments.contains("--json")
        let rest = arguments.filter { $0 != "--json" }
        let directory = StateDirectory.resolve(flag: flagValue("--state-dir", in: rest), environment: ProcessEnvironment.current, isRoot: getuidIsRoot())
        do {
            switch action {
            case .start: return try await start(rest, directory: directory)
            case .stop: return try await stop(directory: directory)
            case .status: return status(directory: directory, json: json)
            }
        } catch let error as CLIError {
            Console.current.err("pilotctl daemon \(action.rawValue): \(error.description)")
            return error.exitCode
        } catch {
            Console.current.err("pilotctl daemon \(action.rawValue): \(error)")
            return ExitStatus.failure
        }
    }

    // MARK: The three actions

    private static func start(_ arguments: [String], directory: String) async throws -> Int32 {
        if let node = nodeStatus(directory) {
            Console.current.out("daemon already running" + describe(node, pid: runningPid(directory)))
            return ExitStatus.success
        }
        guard LocalFile.exists(directory + "/" + StateDirectory.identityFile) else {
            throw CLIError("no identity in \(directory); create one with 'pilotctl init --hostname NAME'")
        }
        // A flag the agent would refuse is a usage error here, not a dead daemon.
        let agentArguments = ["--no-metrics"] + arguments
        do { _ = try AgentCommand.parseAsRoot(try configArguments(agentArguments) + agentArguments) } catch {
            throw CLIError(AgentCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)", exitCode: ExitStatus.usage)
        }
        let pid = try spawn(["pilot", "agent"] + agentArguments, log: directory + "/" + logFile)
        do { try LocalFile.writeAtomically(directory + "/" + pidFile, Array("\(pid)\n".utf8), mode: 0o644) } catch {
            throw CLIError("started pid \(pid) but cannot write its pid file: \(error)")
        }
        let began = monotonicSeconds()
        var last: JSONValue?
        while monotonicSeconds() - began < startSeconds {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                removePidFile(directory, ifItHolds: pid)
                throw CLIError("the daemon exited at once: \(lastLine(of: directory + "/" + logFile) ?? "see \(directory)/\(logFile)")")
            }
            last = nodeStatus(directory)
            if last?["registered"] == .bool(true) {
                Console.current.out("daemon started" + describe(last!, pid: pid))
                return ExitStatus.success
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let why = last?["last_error"]?.stringValue
        throw CLIError("the daemon (pid \(pid)) is running but not registered after \(Int(startSeconds)) s" + (why.map { ": \($0)" } ?? "")
                       + "; it keeps trying (log: \(directory)/\(logFile))")
    }

    private static func stop(directory: String) async throws -> Int32 {
        guard let pid = runningPid(directory) else {
            if nodeStatus(directory) != nil {
                throw CLIError("the node of \(directory) was not started by 'pilotctl daemon start' (no \(pidFile)); stop it the way it was started")
            }
            removePidFile(directory, ifItHolds: nil)
            Console.current.out("daemon not running")
            return ExitStatus.success
        }
        kill(pid, SIGTERM)
        let began = monotonicSeconds()
        while monotonicSeconds() - began < stopSeconds {
            var status: Int32 = 0
            _ = waitpid(pid, &status, WNOHANG) // reaps it when this process started it
            if !isPilot(pid) {
                removePidFile(directory, ifItHolds: pid)
                Console.current.out("daemon stopped (pid \(pid))")
                return ExitStatus.success
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("the daemon (pid \(pid)) did not stop within \(Int(stopSeconds)) s of SIGTERM")
    }

    private static func status(directory: String, json: Bool) -> Int32 {
        guard let node = nodeStatus(directory) else {
            Console.current.out(json ? #"{"running":false}"# : "daemon not running")
            return ExitStatus.failure
        }
        if json {
            var object = node.objectValue ?? JSONObject()
            object["running"] = .bool(true)
            if let pid = runningPid(directory) { object["pid"] = .number(Double(pid)) }
            Console.current.out(JSONValue.object(object).description)
        } else {
            Console.current.out("daemon running" + describe(node, pid: runningPid(directory)))
        }
        return ExitStatus.success
    }

    // MARK: Pieces

    /// ` (pid N): ADDRESS HOSTNAME, registered with REGISTRY`
    static func describe(_ node: JSONValue, pid: pid_t?) -> String {
        let address = node["address"]?.stringValue ?? "-", hostname = node["hostname"]?.stringValue ?? "-"
        let registry = node["registry"]?.stringValue ?? "-"
        let registered = node["registered"] == .bool(true) ? "registered with \(registry)" : "not registered with \(registry) yet"
        return (pid.map { " (pid \($0))" } ?? "") + ": \(address) \(hostname), \(registered)"
    }

    /// The node's status over its control socket, nil when none answers.
    private static func nodeStatus(_ directory: String) -> JSONValue? {
        guard let reply = try? ControlClient.call(path: ControlSocket.path(stateDirectory: directory),
                                                  JSONObject([("cmd", .string("status"))]), timeoutSeconds: 5),
              reply["ok"] == .bool(true) else { return nil }
        return reply
    }

    /// The pid in the pid file, when that process is alive and a pilot.
    private static func runningPid(_ directory: String) -> pid_t? {
        guard let text = try? LocalFile.readText(directory + "/" + pidFile, maxBytes: 32),
              let pid = pid_t(text.split(separator: "\n").first ?? ""), pid > 1, isPilot(pid) else { return nil }
        return pid
    }

    /// Alive (not a zombie) and running this program's agent: a pid
    /// reused by another process since is not ours to signal.
    private static func isPilot(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM,
              let stat = try? LocalFile.readText("/proc/\(pid)/stat", maxBytes: 4096),
              let close = stat.lastIndex(of: ")"), !stat[close...].hasPrefix(") Z"),
              let cmdline = try? LocalFile.read("/proc/\(pid)/cmdline", maxBytes: 64 * 1024) else { return false }
        let words = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return words.count >= 2 && words[0].hasSuffix("pilot") && words[1] == "agent"
    }

    private static func removePidFile(_ directory: String, ifItHolds pid: pid_t?) {
        let path = directory + "/" + pidFile
        if let pid, let text = try? LocalFile.readText(path, maxBytes: 32), pid_t(text.split(separator: "\n").first ?? "") != pid { return }
        unlink(path)
    }

    /// This executable with `arguments` (argv[0] included), in a session of
    /// its own, stdin from /dev/null and output appended to `log`.
    private static func spawn(_ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let setsid: Int32 = 0x80 // POSIX_SPAWN_SETSID (glibc; behind _GNU_SOURCE in spawn.h)
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let status = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, cArguments, environ)
        guard status == 0 else { throw CLIError("cannot start the daemon: \(String(cString: strerror(status)))") }
        return pid
    }

    private static func lastLine(of path: String) -> String? {
        guard let text = try? LocalFile.readText(path, maxBytes: 1 << 20) else { return nil }
        return text.split(separator: "\n").last.map(String.init)
    }

}
