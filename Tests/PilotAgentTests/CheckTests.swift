#if canImport(Glibc)
import Glibc
#endif
import PilotAgent
import PilotCore
import Testing

/// A listening TCP socket on 127.0.0.1 (an ephemeral port) that answers
/// each connection with `response` (nothing: it only accepts).
final class LocalServer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init(response: String?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw Spawn.Failure(description: "cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        fd = listener
        port = UInt16(bigEndian: address.sin_port)
        guard let response else { return }
        let fd = self.fd
        // A thread of its own: a blocking accept must not hold one of the
        // few threads Swift concurrency shares with the test itself.
        startThread {
            for _ in 0..<8 { // bounded: the tests make a few requests
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                var request = [UInt8](repeating: 0, count: 4096)
                _ = recv(client, &request, request.count, 0)
                let bytes = Array(response.utf8)
                _ = send(client, bytes, bytes.count, Int32(MSG_NOSIGNAL))
                close(client)
            }
        }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

/// Runs `body` on a new detached pthread.
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    pthread_create(&thread, nil, { raw in
        let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! Box
        box.body()
        return nil
    }, box)
    pthread_detach(thread)
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/pilot-agent-test-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Spawn.Failure(description: "mkdtemp failed") }
    return String(cString: made)
}

@Suite struct CheckSpecTests {
    @Test func theSeedsExamplesRead() throws {
        let http = try CheckSpec.parse("http:webapp=http://localhost:8080/health")
        #expect(http.kind == .http && http.name == "webapp" && http.target == "http://localhost:8080/health")
        let process = try CheckSpec.parse("process:workers=worker-process,min=2")
        #expect(process.kind == .process && process.target == "worker-process" && process.minimum == 2)
        let command = try CheckSpec.parse("command:disk=/usr/lib/nagios/plugins/check_disk -w 10%,x -c 5%")
        #expect(command.target == "/usr/lib/nagios/plugins/check_disk -w 10%,x -c 5%") // a command keeps its commas
        let latency = try CheckSpec.parse("disk-latency:var=/var/lib,warn=20ms,crit=1s,timeout=3s")
        #expect(latency.warnMilliseconds == 20 && latency.criticalMilliseconds == 1000 && latency.timeoutMilliseconds == 3000)
    }

    @Test(arguments: [
        ("webapp=http://x", "use KIND:NAME=TARGET"),
        ("ftp:x=ftp://h", "unknown kind 'ftp'"),
        ("http:a/b=http://h/", "the name must be"),
        ("http:x=https://h/", "https is not supported yet"),
        ("http:x=http://h/,expect=abc", "expect must be an HTTP status code"),
        ("tcp:db=localhost", "invalid endpoint"),
        ("process:w=worker,min=-1", "min must be a whole number"),
        ("process:w=worker,expect=200", "option 'expect' does not apply to process checks"),
        ("tcp:db=127.0.0.1:5432,timeout=forever", "is not a duration"),
        ("http:x=", "the target is empty"),
    ])
    func badSpecsSayWhatIsWrong(text: String, reason: String) {
        #expect { try CheckSpec.parse(text) } throws: { "\($0)".hasPrefix("invalid check") && "\($0)".contains(reason) }
    }

    @Test func nagiosOutputAndPerfdata() {
        let (text, perfdata) = NagiosOutput.split("DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 'time used'=0.012s;1;2 junk")
        #expect(text == "DISK OK - free space: / 3326 MB (56%);")
        #expect(perfdata == [.init(label: "/", value: 2643), .init(label: "time used", value: 0.012)])
    }
}

@Suite(.serialized) struct CheckRunnerTests {
    @Test func httpAgainstARealServer() throws {
        let healthy = try LocalServer(response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let result = CheckRunner.run(try CheckSpec.parse("http:web=http://127.0.0.1:\(healthy.port)/health"))
        #expect(result.status == .ok && result.message == "HTTP 200")
        #expect((result.latencyMilliseconds ?? -1) >= 0)
        let failing = try LocalServer(response: "HTTP/1.1 503 Service Unavailable\r\n\r\n")
        let bad = CheckRunner.run(try CheckSpec.parse("http:web=http://127.0.0.1:\(failing.port)/"))
        #expect(bad.status == .critical && bad.message == "HTTP 503")
        let expected = CheckRunner.run(try CheckSpec.parse("http:web=http://127.0.0.1:\(failing.port)/,expect=503"))
        #expect(expected.status == .ok)
    }

    @Test func httpThatNeverAnswersTimesOut() throws {
        let silent = try LocalServer(response: nil) // accepts (backlog), never answers
        let result = CheckRunner.run(try CheckSpec.parse("http:web=http://127.0.0.1:\(silent.port)/,timeout=300ms"))
        #expect(result.status == .critical && result.message == "no answer within 300 ms")
    }

    @Test func tcpConnectsOrSaysWhyNot() throws {
        let listener = try LocalServer(response: nil)
        #expect(CheckRunner.run(try CheckSpec.parse("tcp:svc=127.0.0.1:\(listener.port)")).status == .ok)
        let port = listener.port
        _ = consume listener // closed: nothing listens there now
        let closed = CheckRunner.run(try CheckSpec.parse("tcp:svc=127.0.0.1:\(port)"))
        #expect(closed.status == .critical && closed.message.contains("Connection refused"))
    }

    @Test func processCountAgainstASleepingProcess() throws {
        var pid: pid_t = 0
        let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("30"), nil]
        defer { for pointer in arguments { free(pointer) } }
        #expect(posix_spawnp(&pid, "sleep", nil, nil, arguments, environ) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        // Until the child has exec'd, it still carries this test's name.
        for _ in 0..<200 where (try? LocalFile.readText("/proc/\(pid)/comm", maxBytes: 64)) != "sleep\n" { usleep(10_000) }
        let found = CheckRunner.run(try CheckSpec.parse("process:sleepers=sleep,min=1"))
        #expect(found.status == .ok)
        let tooFew = CheckRunner.run(try CheckSpec.parse("process:sleepers=sleep,min=100000"))
        #expect(tooFew.status == .critical)
        #expect(CheckRunner.run(try CheckSpec.parse("process:none=no-such-process-name-xyz")).status == .critical)
    }

    @Test func aNagiosPluginExitingTwoIsCriticalWithItsPerfdata() throws {
        let directory = try temporaryDirectory()
        defer { unlink(directory + "/check.sh"); rmdir(directory) }
        let script = "#!/bin/sh\necho 'QUEUE CRITICAL - 812 jobs waiting | jobs=812;100;500;0 age=35s'\nexit 2\n"
        try LocalFile.writeAtomically(directory + "/check.sh", Array(script.utf8), mode: 0o755)
        let result = CheckRunner.run(try CheckSpec.parse("command:queue=\(directory)/check.sh"))
        #expect(result.status == .critical && result.message == "QUEUE CRITICAL - 812 jobs waiting")
        let message = result.message(for: try CheckSpec.parse("command:queue=\(directory)/check.sh"), host: "web-01", timestamp: 1)
        #expect(message.topic == "health/queue/web-01")
        #expect(message.payload["perfdata"] == .object(JSONObject([("jobs", .number(812)), ("age", .number(35))])))
        #expect(message.payload["exit_code"] == .number(2) && message.payload["status"] == .string("critical"))
        for (code, status) in [(0, CheckResult.Status.ok), (1, .warning), (3, .unknown), (7, .unknown)] {
            try LocalFile.writeAtomically(directory + "/check.sh", Array("#!/bin/sh\nexit \(code)\n".utf8), mode: 0o755)
            #expect(CheckRunner.run(try CheckSpec.parse("command:c=\(directory)/check.sh")).status == status)
        }
    }

    @Test func aHangingCommandIsKilledAtItsTimeout() throws {
        let result = CheckRunner.run(try CheckSpec.parse("command:slow=sleep 10", defaultTimeoutMilliseconds: 300))
        #expect(result.status == .critical && result.message == "no answer within 300 ms")
        #expect((result.latencyMilliseconds ?? 0) < 5_000)
        let missing = CheckRunner.run(try CheckSpec.parse("command:x=/no/such/plugin"))
        #expect(missing.status == .unknown && missing.message.contains("cannot run /no/such/plugin"))
    }

    @Test func diskLatencyOnATemporaryDirectory() throws {
        let directory = try temporaryDirectory()
        defer { rmdir(directory) }
        let result = CheckRunner.run(try CheckSpec.parse("disk-latency:tmp=\(directory),warn=10s,crit=20s"))
        #expect(result.status == .ok)
        #expect((result.latencyMilliseconds ?? -1) >= 0)
        #expect((try LocalFile.listDirectory(directory)).isEmpty) // its file is gone
        let strict = CheckRunner.run(try CheckSpec.parse("disk-latency:tmp=\(directory),warn=0ms,crit=10s"))
        #expect(strict.status == .warning)
        #expect(CheckRunner.run(try CheckSpec.parse("disk-latency:gone=/no/such/directory")).status == .critical)
    }
}
