#if canImport(Glibc)
internal import Glibc
#endif
internal import PilotAgent

/// Runs a program without a shell, for the `exec` receiver and sendmail:
/// posix_spawn in its own process group, `stdin` written to it through a
/// pipe (then closed), stdout and stderr captured together (at most
/// `maxOutputBytes`; the rest is read and dropped so the program never
/// stalls on a full pipe). At the timeout the group gets SIGTERM, and
/// SIGKILL a second later. The waiting happens on a thread of its own, never
/// on an event loop or the cooperative pool.
enum CommandRunner {
    /// `arguments[0]` is the program: a path, or a name looked up in PATH.
    /// `exitCode` is nil when the program was killed by a signal (or the
    /// timeout), or could not be started: then `output` says why.
    static func run(_ arguments: [String], stdin: [UInt8], timeoutSeconds: Double,
                    maxOutputBytes: Int = 64 * 1024) async -> (exitCode: Int32?, output: String, timedOut: Bool) {
        await onOwnThread { runBlocking(arguments, stdin: stdin, timeoutSeconds: timeoutSeconds, maxOutputBytes: maxOutputBytes) }
    }

    private final class Job: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    private static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let job = Unmanaged.passRetained(Job { continuation.resume(returning: body()) })
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                // A program that closes its stdin early must cost this
                // thread an EPIPE, not the process a SIGPIPE; a signal left
                // pending on this thread dies with it.
                var pipeSignal = sigset_t()
                sigemptyset(&pipeSignal)
                sigaddset(&pipeSignal, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                job.body()
                return nil
            }, job.toOpaque())
            if status == 0 {
                pthread_detach(thread)
            } else {
                job.takeRetainedValue().body()  // no thread to be had: block here rather than not run
            }
        }
    }

    static func runBlocking(_ arguments: [String], stdin input: [UInt8], timeoutSeconds: Double,
                            maxOutputBytes: Int) -> (exitCode: Int32?, output: String, timedOut: Bool) {
        guard let program = arguments.first, !program.isEmpty else { return (nil, "no program to run", false) }
        var outputPipe: [Int32] = [0, 0], inputPipe: [Int32] = [0, 0]
        guard pipe(&outputPipe) == 0 else { return (nil, "cannot create a pipe: \(String(cString: strerror(errno)))", false) }
        guard pipe(&inputPipe) == 0 else {
            close(outputPipe[0]); close(outputPipe[1])
            return (nil, "cannot create a pipe: \(String(cString: strerror(errno)))", false)
        }
        // The child gets them only through the dup2s below.
        for fd in outputPipe + inputPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inputPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 2)
        let deadline = monotonicSeconds() + max(0, timeoutSeconds)
        let (pid, status) = Spawn.start(arguments, actions: &actions)
        close(outputPipe[1])
        close(inputPipe[0])
        guard status == 0 else {
            close(outputPipe[0]); close(inputPipe[1])
            return (nil, "cannot run \(program): \(String(cString: strerror(status)))", false)
        }
        let reader = outputPipe[0]
        var writer: Int32? = inputPipe[1]
        defer { close(reader); if let writer { close(writer) } }
        _ = fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK)
        _ = fcntl(inputPipe[1], F_SETFL, fcntl(inputPipe[1], F_GETFL) | O_NONBLOCK)

        var written = 0
        if input.isEmpty { close(inputPipe[1]); writer = nil }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var timedOut = false
        var reading = true
        while reading || writer != nil {
            let left = deadline - monotonicSeconds()
            guard left > 0 else { timedOut = true; break }
            var fds = [pollfd(fd: reading ? reader : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: writer ?? -1, events: Int16(POLLOUT), revents: 0)]
            let ready = poll(&fds, 2, Int32(min(left * 1000 + 1, 1000)))
            if ready < 0, errno != EINTR { break }
            guard ready > 0 else { continue }
            if let fd = writer, fds[1].revents != 0 {
                let n = input.withUnsafeBytes { write(fd, $0.baseAddress! + written, min($0.count - written, 64 * 1024)) }
                if n > 0 { written += n }
                // EPIPE: it closed its stdin, which is its business.
                let broken = n < 0 && errno != EAGAIN && errno != EINTR
                if written == input.count || broken {
                    close(fd)
                    writer = nil
                }
            }
            if reading, fds[0].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
                if n > 0 {
                    if output.count < maxOutputBytes { output.append(contentsOf: chunk[..<min(n, maxOutputBytes - output.count)]) }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    reading = false
                }
            }
        }
        // Its output is closed; it may still run, or have left a child
        // holding the pipe: wait for it within the same deadline.
        var waitStatus: Int32 = 0
        var reaped = false
        while !timedOut {
            let result = waitpid(pid, &waitStatus, WNOHANG)
            if result == pid { reaped = true; break }
            if result < 0, errno != EINTR { reaped = true; waitStatus = 0x7F; break }  // lost (cannot happen): not an exit
            if monotonicSeconds() >= deadline { timedOut = true; break }
            usleep(2_000)
        }
        if timedOut {
            kill(-pid, SIGTERM)
            let grace = monotonicSeconds() + 1
            while monotonicSeconds() < grace {
                let result = waitpid(pid, &waitStatus, WNOHANG)
                if result == pid || (result < 0 && errno != EINTR) { reaped = true; break }
                usleep(5_000)
            }
            kill(-pid, SIGKILL)  // the rest of the group, or the program itself
            if !reaped { while waitpid(pid, &waitStatus, 0) < 0, errno == EINTR {} }
        }
        let exited = waitStatus & 0x7F == 0
        let code: Int32? = exited && !timedOut ? (waitStatus >> 8) & 0xFF : nil
        return (code, String(decoding: output, as: UTF8.self), timedOut)
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
