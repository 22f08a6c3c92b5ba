#if canImport(Glibc)
internal import Glibc
#endif
public import PilotCore

/// A service check as configured: `--check KIND:NAME=TARGET[,key=value]...`
///
///     http:webapp=http://localhost:8080/health[,timeout=5s][,expect=200]
///     tcp:db=127.0.0.1:5432
///     process:workers=worker-process,min=2
///     command:backup=/usr/lib/nagios/plugins/check_disk -w 10% -c 5% -p /
///     postgres:main=host=127.0.0.1 port=5432 user=postgres dbname=postgres
///     disk-latency:var=/var/lib/pilot[,warn=50ms,crit=500ms]
///
/// A command takes the rest of the line as its arguments (split on spaces,
/// no shell), and a postgres target is a libpq connection string; neither
/// reads options, so `--check-timeout` applies to them.
public struct CheckSpec: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case http, tcp, process, command, postgres
        case diskLatency = "disk-latency"
    }

    public var kind: Kind
    public var name: String
    public var target: String
    public var timeoutMilliseconds = 5_000
    public var minimum = 1
    public var expectStatus: Int?
    public var warnMilliseconds = 50.0
    public var criticalMilliseconds = 500.0

    public static func parse(_ text: String, defaultTimeoutMilliseconds: Int = 5_000) throws(ParseError) -> CheckSpec {
        func fail(_ reason: String) -> ParseError { ParseError("check", text, reason) }
        guard let colon = text.firstIndex(of: ":"), let equals = text.firstIndex(of: "="), colon < equals else {
            throw fail("use KIND:NAME=TARGET, e.g. http:webapp=http://localhost:8080/health")
        }
        let kindText = String(text[..<colon])
        guard let kind = Kind(rawValue: kindText) else {
            throw fail("unknown kind '\(kindText)' (one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let name = String(text[text.index(after: colon)..<equals])
        guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x2F && $0 != 0x2A }) else {
            throw fail("the name must be 1 to 64 printable characters without '/', '*' or spaces")
        }
        var spec = CheckSpec(kind: kind, name: name, target: "", timeoutMilliseconds: defaultTimeoutMilliseconds)
        let rest = String(text[text.index(after: equals)...])
        var parts = kind == .command || kind == .postgres ? [rest] : rest.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        spec.target = parts.removeFirst()
        guard !spec.target.isEmpty else { throw fail("the target is empty") }
        for option in parts {
            let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw fail("option '\(option)' is not key=value") }
            switch (pair[0], kind) {
            case ("timeout", _): spec.timeoutMilliseconds = Int(try milliseconds(pair[1], text))
            case ("min", .process):
                guard let minimum = Int(pair[1]), (0...1_000_000).contains(minimum) else { throw fail("min must be a whole number") }
                spec.minimum = minimum
            case ("expect", .http):
                guard let status = Int(pair[1]), (100...599).contains(status) else { throw fail("expect must be an HTTP status code") }
                spec.expectStatus = status
            case ("warn", .diskLatency): spec.warnMilliseconds = try milliseconds(pair[1], text)
            case ("crit", .diskLatency): spec.criticalMilliseconds = try milliseconds(pair[1], text)
            default: throw fail("option '\(pair[0])' does not apply to \(kind.rawValue) checks")
            }
        }
        guard (1...600_000).contains(spec.timeoutMilliseconds) else { throw fail("timeout must be between 1 ms and 10 minutes") }
        switch kind {
        case .http:
            guard spec.target.hasPrefix("http://") else {
                throw fail(spec.target.hasPrefix("https://")
                    ? "https is not supported yet; use a command check with curl or a Nagios check_http"
                    : "the target must be an http:// URL")
            }
            _ = try HTTPTarget(spec.target)
        case .tcp:
            do { _ = try Endpoint(parsing: spec.target) } catch { throw fail("\(error)") }
        case .command:
            guard !spec.target.split(separator: " ").isEmpty else { throw fail("no command") }
        case .diskLatency:
            guard spec.target.hasPrefix("/") else { throw fail("the target must be an absolute directory") }
        case .process, .postgres:
            break
        }
        return spec
    }

    /// `250ms`, `5s`, `2m`, or a bare number of milliseconds.
    static func milliseconds(_ value: String, _ text: String) throws(ParseError) -> Double {
        let scale: Double, digits: Substring
        if value.hasSuffix("ms") { (scale, digits) = (1, value.dropLast(2)) }
        else if value.hasSuffix("s") { (scale, digits) = (1000, value.dropLast()) }
        else if value.hasSuffix("m") { (scale, digits) = (60_000, value.dropLast()) }
        else { (scale, digits) = (1, Substring(value)) }
        guard let number = Double(digits), number.isFinite, number >= 0 else { throw ParseError("check", text, "'\(value)' is not a duration like 250ms or 5s") }
        return number * scale
    }
}

/// `http://host[:port]/path`.
struct HTTPTarget {
    var host: String, port: UInt16, path: String

    init(_ url: String) throws(ParseError) {
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        guard !authority.isEmpty, !path.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else {
            throw ParseError("check", url, "not a usable http:// URL")
        }
        if let endpoint = try? Endpoint(parsing: authority) {
            host = endpoint.host
            port = endpoint.port
        } else {
            guard !authority.contains(":"), (try? Hostname.validate(authority)) != nil else { throw ParseError("check", url, "bad host '\(authority)'") }
            host = authority
            port = 80
        }
    }
}

/// What a check found.
public struct CheckResult: Equatable, Sendable {
    public enum Status: String, Sendable { case ok, warning, critical, unknown }
    public var status: Status
    public var latencyMilliseconds: Double?
    public var fields: [(String, JSONValue)] = []
    public var message: String

    public static func == (a: CheckResult, b: CheckResult) -> Bool {
        a.status == b.status && a.message == b.message && a.fields.count == b.fields.count
    }

    /// The `health/NAME/HOST` message.
    public func message(for spec: CheckSpec, host: String, timestamp: Int64) -> AgentMessage {
        var payload = JSONObject([
            ("host", .string(host)), ("check", .string(spec.name)), ("kind", .string(spec.kind.rawValue)), ("status", .string(status.rawValue)),
            ("ok", .bool(status == .ok)),
        ])
        if let latencyMilliseconds { payload["latency_ms"] = .number((latencyMilliseconds * 10).rounded() / 10) }
        for (key, value) in fields { payload[key] = value }
        payload["message"] = .string(String(self.message.prefix(500)))
        payload["ts"] = .number(Double(timestamp))
        return AgentMessage(topic: "health/\(spec.name)/\(host)", payload: payload)
    }
}

/// Runs checks. Blocking: call it from a thread pool, not an event loop.
public enum CheckRunner {
    public static func run(_ spec: CheckSpec, proc: String = "/proc") -> CheckResult {
        switch spec.kind {
        case .http: return http(spec)
        case .tcp: return tcp(spec)
        case .process: return process(spec, proc: proc)
        case .command: return command(spec)
        case .postgres: return postgres(spec)
        case .diskLatency: return diskLatency(spec)
        }
    }

    static func http(_ spec: CheckSpec) -> CheckResult {
        guard let target = try? HTTPTarget(spec.target) else { return CheckResult(status: .unknown, message: "bad URL") }
        let started = monotonicMilliseconds()
        let connection: Int32
        switch connect(host: target.host, port: target.port, timeoutMilliseconds: spec.timeoutMilliseconds) {
        case .success(let fd): connection = fd
        case .failure(let error): return CheckResult(status: .critical, message: error.description)
        }
        defer { close(connection) }
        let hostHeader = target.port == 80 ? target.host : "\(target.host):\(target.port)"
        let request = Array("GET \(target.path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: pilot-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return CheckResult(status: .critical, message: "cannot send the request: \(String(cString: strerror(errno)))")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while !response.contains(0x0A), response.count < 8192 {
            let left = spec.timeoutMilliseconds - Int(monotonicMilliseconds() - started)
            var poller = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&poller, 1, Int32(left)) > 0 else {
                return CheckResult(status: .critical, latencyMilliseconds: monotonicMilliseconds() - started, message: "no answer within \(spec.timeoutMilliseconds) ms")
            }
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            response.append(contentsOf: chunk[..<n])
        }
        let latency = monotonicMilliseconds() - started
        let statusLine = String(decoding: response.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            return CheckResult(status: .critical, latencyMilliseconds: latency, message: "not an HTTP answer: \(statusLine.prefix(80))")
        }
        let healthy = spec.expectStatus.map { $0 == code } ?? (200..<300).contains(code)
        return CheckResult(status: healthy ? .ok : .critical, latencyMilliseconds: latency, fields: [("status_code", .number(Double(code)))],
                           message: "HTTP \(code)")
    }

    static func tcp(_ spec: CheckSpec) -> CheckResult {
        guard let endpoint = try? Endpoint(parsing: spec.target) else { return CheckResult(status: .unknown, message: "bad target") }
        let started = monotonicMilliseconds()
        switch connect(host: endpoint.host, port: endpoint.port, timeoutMilliseconds: spec.timeoutMilliseconds) {
        case .success(let fd):
            close(fd)
            return CheckResult(status: .ok, latencyMilliseconds: monotonicMilliseconds() - started, message: "connected")
        case .failure(let error):
            return CheckResult(status: .critical, message: error.description)
        }
    }

    /// Processes whose name (comm) or program (argv[0]'s last component)
    /// is the target.
    static func process(_ spec: CheckSpec, proc: String) -> CheckResult {
        let count = countProcesses(named: spec.target, proc: proc)
        return CheckResult(status: count >= spec.minimum ? .ok : .critical, fields: [("count", .number(Double(count))), ("min", .number(Double(spec.minimum)))],
                           message: "\(count) running, at least \(spec.minimum) wanted")
    }

    public static func countProcesses(named name: String, proc: String = "/proc") -> Int {
        guard let entries = try? LocalFile.listDirectory(proc) else { return 0 }
        var count = 0
        for entry in entries where entry.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            let comm = (try? LocalFile.readText("\(proc)/\(entry)/comm", maxBytes: 256))?.split(separator: "\n").first.map(String.init)
            if comm == name { count += 1; continue }
            guard let cmdline = try? LocalFile.read("\(proc)/\(entry)/cmdline", maxBytes: 64 * 1024) else { continue }
            let program = cmdline.split(separator: 0, maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            if program.split(separator: "/").last.map(String.init) == name { count += 1 }
        }
        return count
    }

    /// A Nagios plugin: exit 0/1/2/3 is ok/warning/critical/unknown, and the
    /// perfdata after `|` becomes numbers (`time=0.012s;1;2` → `time: 0.012`).
    static func command(_ spec: CheckSpec) -> CheckResult {
        let arguments = spec.target.split(separator: " ").map(String.init)
        let outcome: Spawn.Outcome
        do { outcome = try Spawn.run(arguments, timeoutMilliseconds: spec.timeoutMilliseconds) } catch {
            return CheckResult(status: .unknown, message: error.description)
        }
        if outcome.timedOut {
            return CheckResult(status: .critical, latencyMilliseconds: outcome.milliseconds, message: "no answer within \(spec.timeoutMilliseconds) ms")
        }
        let status: CheckResult.Status = switch outcome.exitCode {
        case 0?: .ok
        case 1?: .warning
        case 2?: .critical
        default: .unknown
        }
        let firstLine = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
        let (text, perfdata) = NagiosOutput.split(firstLine)
        var fields: [(String, JSONValue)] = [("exit_code", outcome.exitCode.map { .number(Double($0)) } ?? .null)]
        if !perfdata.isEmpty { fields.append(("perfdata", .object(JSONObject(perfdata.map { ($0.label, .number($0.value)) })))) }
        return CheckResult(status: status, latencyMilliseconds: outcome.milliseconds, fields: fields, message: text)
    }

    /// `psql CONNINFO -XAtqc 'SELECT 1'`: ok when it prints 1.
    static func postgres(_ spec: CheckSpec) -> CheckResult {
        let outcome: Spawn.Outcome
        do { outcome = try Spawn.run(["psql", spec.target, "-XAtqc", "SELECT 1"], timeoutMilliseconds: spec.timeoutMilliseconds) } catch {
            return CheckResult(status: .unknown, message: "\(error) (install postgresql-client)")
        }
        let answer = outcome.output.split(separator: "\n").first.map(String.init) ?? ""
        if outcome.exitCode == 0, answer == "1" {
            return CheckResult(status: .ok, latencyMilliseconds: outcome.milliseconds, message: "SELECT 1 answered")
        }
        return CheckResult(status: .critical, latencyMilliseconds: outcome.milliseconds,
                           message: outcome.timedOut ? "no answer within \(spec.timeoutMilliseconds) ms" : String(answer.prefix(200)))
    }

    /// Writes 4 KiB to a new file in the directory, fsyncs it, removes it.
    static func diskLatency(_ spec: CheckSpec) -> CheckResult {
        let path = "\(spec.target)/.pilot-latency-\(getpid())"
        let started = monotonicMilliseconds()
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return CheckResult(status: .critical, message: "cannot write in \(spec.target): \(String(cString: strerror(errno)))") }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 0x50, count: 4096)
        let written = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == block.count, fsync(fd) == 0 else {
            return CheckResult(status: .critical, message: "write or fsync failed in \(spec.target): \(String(cString: strerror(errno)))")
        }
        let latency = monotonicMilliseconds() - started
        let status: CheckResult.Status = latency >= spec.criticalMilliseconds ? .critical : latency >= spec.warnMilliseconds ? .warning : .ok
        return CheckResult(status: status, latencyMilliseconds: latency, message: "4 KiB written and synced")
    }

    struct ConnectError: Error, CustomStringConvertible { var description: String }

    /// A TCP connection within the timeout (non-blocking connect and poll).
    static func connect(host: String, port: UInt16, timeoutMilliseconds: Int) -> Result<Int32, ConnectError> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else { return .failure(ConnectError(description: "cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")) }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(ConnectError(description: "cannot create a socket")) }
        if Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure(ConnectError(description: "cannot connect to \(host):\(port): \(reason)"))
        }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, Int32(timeoutMilliseconds)) > 0 else {
            close(fd)
            return .failure(ConnectError(description: "no connection to \(host):\(port) within \(timeoutMilliseconds) ms"))
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(fd)
            return .failure(ConnectError(description: "cannot connect to \(host):\(port): \(String(cString: strerror(error)))"))
        }
        return .success(fd)
    }
}

/// The output convention of Nagios plugins: `TEXT | label=value[UOM];warn;crit;min;max ...`.
public enum NagiosOutput {
    public struct Perfdata: Equatable, Sendable {
        public var label: String
        public var value: Double
        public init(label: String, value: Double) {
            self.label = label
            self.value = value
        }
    }

    public static func split(_ line: String) -> (text: String, perfdata: [Perfdata]) {
        guard let bar = line.firstIndex(of: "|") else { return (line.trimmingCharacters, []) }
        let text = String(line[..<bar]).trimmingCharacters
        var items: [Perfdata] = []
        // Items are separated by spaces; a quoted label may hold spaces ('time used'=0.012s).
        var tokens: [Substring] = []
        var rest = line[line.index(after: bar)...]
        while let start = rest.firstIndex(where: { $0 != " " }) {
            rest = rest[start...]
            var end = rest.endIndex
            if rest.first == "'", let close = rest.dropFirst().firstIndex(of: "'") {
                end = rest[close...].firstIndex(of: " ") ?? rest.endIndex
            } else {
                end = rest.firstIndex(of: " ") ?? rest.endIndex
            }
            tokens.append(rest[..<end])
            rest = rest[end...]
        }
        for item in tokens {
            guard let equals = item.lastIndex(of: "=") else { continue }
            var label = String(item[..<equals])
            if label.hasPrefix("'"), label.hasSuffix("'"), label.count >= 2 { label = String(label.dropFirst().dropLast()) }
            let valueText = item[item.index(after: equals)...].prefix { $0 != ";" }
            let number = valueText.prefix { $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E" }
            guard !label.isEmpty, let value = Double(number), value.isFinite else { continue }
            items.append(Perfdata(label: label, value: value))
        }
        return (text, items)
    }
}

extension String {
    var trimmingCharacters: String {
        String(Substring(self).trimmingSpaces)
    }
}
