import Glibc
import NIOCore
import NIOPosix
import PilotAlerts
import PilotCore
@testable import PilotRoles
import Testing

/// tests/system/smtp_server.py (aiosmtpd, STARTTLS and AUTH LOGIN
/// required), started for one test and stopped after it.
private final class SMTPTestServer {
    static let script = String(#filePath.dropLast("Tests/PilotRolesTests/SMTPSenderTests.swift".count)) + "tests/system/smtp_server.py"
    static let python = "/usr/bin/python3"
    let directory: String
    let pid: pid_t
    let port: Int
    var certificate: String { directory + "/cert.pem" }

    /// Can this machine run it? Under CI it must: there the test runs and
    /// fails with the reason instead of being skipped.
    static func usable() async -> Bool {
        if getenv("CI").map({ String(cString: $0) }) == "true" { return true }
        return await missing() == nil
    }

    static func missing() async -> String? {
        let probe = await CommandRunner.run([python, "-c", "import aiosmtpd"], stdin: [], timeoutSeconds: 20)
        if probe.exitCode != 0 { return "\(python) cannot import aiosmtpd (apt-get install python3-aiosmtpd): \(probe.output)" }
        let openssl = await CommandRunner.run(["openssl", "version"], stdin: [], timeoutSeconds: 20)
        if openssl.exitCode != 0 { return "no openssl (apt-get install openssl): \(openssl.output)" }
        return nil
    }

    init(_ extra: [String] = []) async throws {
        if let reason = await Self.missing() { throw TestFailure(reason) }
        var template = Array("/tmp/pilot-smtp-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw TestFailure("mkdtemp failed") }
        directory = String(cString: made)
        let log = directory + "/server.log"
        let arguments = [Self.python, Self.script, "--dir", directory, "--out", directory + "/received.jsonl",
                         "--user", "pilot", "--password", "s3cret!", "--max-seconds", "120"] + extra
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Tests run on threads that block most signals, and a child
        // inherits that mask: without this it would never see SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var child: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let status = posix_spawn(&child, Self.python, &actions, &attributes, cArguments, environ)
        guard status == 0 else { throw TestFailure("cannot start \(Self.python): \(status)") }
        pid = child
        var found: Int?
        for _ in 0..<300 {
            let text = (try? Self.read(log)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ready ") }) {
                found = Int(line.dropFirst(6))
                break
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw TestFailure("smtp_server.py exited: \(text)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard let found else {
            kill(pid, SIGKILL)
            throw TestFailure("smtp_server.py did not say ready: \((try? Self.read(log)) ?? "")")
        }
        port = found
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        var waited = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            waited += 1
            if waited == 250 { kill(pid, SIGKILL) }  // 5 s
            usleep(20_000)
        }
        for name in ["cert.pem", "key.pem", "received.jsonl", "server.log"] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    /// The messages it took, oldest first.
    func received() throws -> [JSONValue] {
        let text = (try? Self.read(directory + "/received.jsonl")) ?? ""
        return try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }
    }

    static func read(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else { throw TestFailure("cannot open \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private let message = Array("""
    From: Pilot <pilot@example.com>\r
    To: ops@example.com\r
    Subject: [FIRING] disk full on db-01\r
    \r
    The disk is full.\r
    .a line that starts with a dot\r
    end\r

    """.utf8)

@Suite(.serialized) struct SMTPSenderTests {
    private func deliver(_ server: SMTPTestServer, _ configure: (inout SMTPServer) -> Void) async throws(DeliveryFailure) -> String {
        let group = MultiThreadedEventLoopGroup.singleton
        var target = SMTPServer(host: "127.0.0.1", port: server.port, security: .starttls, user: "pilot", password: "s3cret!", timeoutSeconds: 20)
        configure(&target)
        return try await SMTPSender.send(message: message, from: "pilot@example.com", to: ["ops@example.com", "oncall@example.com"],
                                         server: target, group: group)
    }

    private func expectRecorded(_ server: SMTPTestServer) throws {
        let received = try server.received()
        try #require(received.count == 1)
        let record = received[0]
        #expect(record["mail_from"]?.stringValue == "pilot@example.com")
        #expect(record["rcpt_tos"] == .array([.string("ops@example.com"), .string("oncall@example.com")]))
        #expect(record["auth_user"]?.stringValue == "pilot")
        let data = try #require(record["data"]?.stringValue)
        #expect(data.contains("Subject: [FIRING] disk full on db-01\r\n"))
        #expect(data.contains("\r\nThe disk is full.\r\n.a line that starts with a dot\r\nend\r\n"))
    }

    @Test(.enabled("needs /usr/bin/python3 with aiosmtpd and openssl") { await SMTPTestServer.usable() })
    func startTLSAndAuthLoginWithoutVerification() async throws {
        let server = try await SMTPTestServer()
        defer { server.stop() }
        let reply = try await deliver(server) { $0.insecure = true }
        #expect(reply.hasPrefix("250 2.0.0 OK queued as test1"))
        try expectRecorded(server)
    }

    @Test(.enabled("needs /usr/bin/python3 with aiosmtpd and openssl") { await SMTPTestServer.usable() })
    func startTLSTrustingTheServersCertificate() async throws {
        let server = try await SMTPTestServer()
        defer { server.stop() }
        let reply = try await deliver(server) { $0.caFile = server.certificate }
        #expect(reply.hasPrefix("250 "))
        try expectRecorded(server)
    }

    @Test(.enabled("needs /usr/bin/python3 with aiosmtpd and openssl") { await SMTPTestServer.usable() })
    func implicitTLSForSMTPS() async throws {
        let server = try await SMTPTestServer(["--implicit-tls"])
        defer { server.stop() }
        let reply = try await deliver(server) {
            $0.security = .tls
            $0.caFile = server.certificate
        }
        #expect(reply.hasPrefix("250 "))
        try expectRecorded(server)
    }

    @Test(.enabled("needs /usr/bin/python3 with aiosmtpd and openssl") { await SMTPTestServer.usable() })
    func untrustedCertificateAndWrongPasswordAreRefused() async throws {
        let server = try await SMTPTestServer()
        defer { server.stop() }
        // Verification is on by default: the self-signed certificate fails it.
        let untrusted = await #expect(throws: DeliveryFailure.self) { try await deliver(server) { _ in } }
        #expect(untrusted?.description.contains("SMTP TLS with 127.0.0.1:\(server.port) failed during the TLS handshake") == true, "\(String(describing: untrusted))")

        let refused = await #expect(throws: DeliveryFailure.self) {
            try await deliver(server) {
                $0.insecure = true
                $0.password = "wrong"
            }
        }
        #expect(refused?.description.hasPrefix("SMTP AUTH refused: 535") == true, "\(String(describing: refused))")
        #expect(refused?.permanent == true)
        #expect(try server.received().isEmpty)
    }

    @Test func silentServerTimesOutNamingTheStep() async throws {
        // A listening socket that never accepts: the connection completes
        // in the kernel's backlog, and no greeting ever comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = TestSocket.address("127.0.0.1", 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } } == 0)
        try #require(listen(fd, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let server = SMTPServer(host: "127.0.0.1", port: port, security: .none, timeoutSeconds: 0.3)
        let failure = await #expect(throws: DeliveryFailure.self) {
            try await SMTPSender.send(message: message, from: "pilot@example.com", to: ["ops@example.com"], server: server,
                                      group: MultiThreadedEventLoopGroup.singleton)
        }
        #expect(failure?.description == "SMTP 127.0.0.1:\(port) timed out after 0.3 s waiting for the greeting")
        #expect(failure?.permanent == false)
    }

    @Test func connectionRefusedIsTransient() async throws {
        let server = SMTPServer(host: "127.0.0.1", port: 1, security: .none, timeoutSeconds: 5)
        let failure = await #expect(throws: DeliveryFailure.self) {
            try await SMTPSender.send(message: message, from: "pilot@example.com", to: ["ops@example.com"], server: server,
                                      group: MultiThreadedEventLoopGroup.singleton)
        }
        #expect(failure?.description.hasPrefix("SMTP cannot connect to 127.0.0.1:1") == true)
        #expect(failure?.permanent == false)
    }

    @Test func sendmailGetsTheMessageWithUnixLineEndingsAndItsExitCodeDecides() async throws {
        var template = Array("/tmp/pilot-sendmail-test-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        let script = directory + "/sendmail"
        defer { for name in ["sendmail", "args", "message", "code"] { unlink(directory + "/" + name) }; rmdir(directory) }
        let text = "#!/bin/sh\necho \"$@\" > \(directory)/args\ncat > \(directory)/message\necho refused by test >&2\nexit $(cat \(directory)/code)\n"
        try write(text, to: script)
        chmod(script, 0o755)

        try write("0", to: directory + "/code")
        try await SMTPSender.sendmail(path: script, message: message, timeoutSeconds: 10)
        #expect(try SMTPTestServer.read(directory + "/args") == "-t -i\n")
        let received = try SMTPTestServer.read(directory + "/message")
        #expect(received == String(decoding: message, as: UTF8.self).replacing("\r\n", with: "\n"))

        try write("75", to: directory + "/code")
        let temporary = await #expect(throws: DeliveryFailure.self) { try await SMTPSender.sendmail(path: script, message: message, timeoutSeconds: 10) }
        #expect(temporary?.description == "sendmail \(script) exited with 75: refused by test")
        #expect(temporary?.permanent == false)

        try write("67", to: directory + "/code")
        let permanent = await #expect(throws: DeliveryFailure.self) { try await SMTPSender.sendmail(path: script, message: message, timeoutSeconds: 10) }
        #expect(permanent?.permanent == true)

        let missing = await #expect(throws: DeliveryFailure.self) {
            try await SMTPSender.sendmail(path: directory + "/no-such-sendmail", message: message, timeoutSeconds: 10)
        }
        #expect(missing?.permanent == true)
    }

    private func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "w") else { throw TestFailure("cannot write \(path)") }
        defer { fclose(file) }
        _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    }
}

@Suite struct CommandRunnerTests {
    @Test func stdinReachesTheProgramAndItsOutputComesBack() async {
        let result = await CommandRunner.run(["/bin/cat"], stdin: Array("hello\nworld\n".utf8), timeoutSeconds: 10)
        #expect(result.exitCode == 0)
        #expect(result.output == "hello\nworld\n")
        #expect(!result.timedOut)
    }

    @Test func exitCodeAndStderrAreReported() async {
        let result = await CommandRunner.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], stdin: [], timeoutSeconds: 10)
        #expect(result.exitCode == 3)
        #expect(result.output == "out\nerr\n")
    }

    @Test func timeoutKillsTheProgram() async {
        let result = await CommandRunner.run(["/bin/sleep", "30"], stdin: [], timeoutSeconds: 0.2)
        #expect(result.timedOut)
        #expect(result.exitCode == nil)
    }

    @Test func programIgnoringSIGTERMIsKilledAfterTheGrace() async {
        let result = await CommandRunner.run(["/bin/sh", "-c", "trap '' TERM; echo started; while :; do sleep 1; done"], stdin: [], timeoutSeconds: 0.5)
        #expect(result.timedOut)
        #expect(result.exitCode == nil)
        #expect(result.output == "started\n")
    }

    @Test func largeInputAndOutputFlowTogetherAndOutputIsBounded() async {
        // cat writes as it reads: a runner that wrote all of stdin before
        // reading would deadlock on the two full pipes.
        let input = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        let result = await CommandRunner.run(["/bin/cat"], stdin: input, timeoutSeconds: 20)
        #expect(result.exitCode == 0)
        #expect(result.output.utf8.count == 64 * 1024)
        #expect(!result.timedOut)
    }

    @Test func programThatIgnoresItsInputStillSucceeds() async {
        // Its stdin closes unread: an EPIPE for the runner, not a SIGPIPE for the tests.
        let result = await CommandRunner.run(["/bin/true"], stdin: [UInt8](repeating: 0, count: 1 << 20), timeoutSeconds: 10)
        #expect(result.exitCode == 0)
        #expect(!result.timedOut)
    }

    @Test func missingProgramSaysSo() async {
        let result = await CommandRunner.run(["/nonexistent/notify"], stdin: [], timeoutSeconds: 5)
        #expect(result.exitCode == nil)
        #expect(result.output.hasPrefix("cannot run /nonexistent/notify"))
        #expect(!result.timedOut)
    }
}
