/// Why one SMTP submission failed, in one line that names the step and
/// quotes the server ("SMTP AUTH refused: 535 5.7.8 Authentication
/// credentials invalid"). `permanent` is a 5xx reply or a mismatch between
/// the configuration and the server that trying again will not mend; the
/// rest (4xx, a dropped connection, a garbled reply) is worth a retry.
public struct SMTPFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public var permanent: Bool
    /// The server's reply code, when the failure is a reply.
    public var code: Int?

    public init(_ description: String, permanent: Bool, code: Int? = nil) {
        self.description = description
        self.permanent = permanent
        self.code = code
    }
}

/// The client side of one SMTP submission (RFC 5321, STARTTLS RFC 3207,
/// AUTH RFC 4954) as a pure state machine: the shell feeds it the server's
/// reply lines and carries out the action each returns. Nothing is
/// pipelined: every command waits for its reply, so at most one reply is
/// outstanding and a line that arrives when none is expected is an error.
///
///     greeting 220 → EHLO → [STARTTLS 220 → .startTLS → tlsEstablished() → EHLO]
///     → [AUTH PLAIN 235 | AUTH LOGIN 334 334 235] → MAIL FROM 250 → RCPT TO 250 (each)
///     → DATA 354 → message 250 → .delivered (send the farewell QUIT, then close)
///
/// Credentials are sent only over TLS, unless the security is `.none`.
public struct SMTPDialogue: Sendable {
    /// `.starttls` upgrades the connection after the first EHLO and fails if
    /// the server does not offer it; `.tls` is TLS from the first byte
    /// (smtps://, the shell sets it up); `.none` is plaintext throughout.
    public enum Security: String, Sendable, Equatable, CaseIterable { case starttls, tls, none }
    public enum AuthMechanism: String, Sendable, Equatable, CaseIterable { case plain, login }

    public struct Credentials: Sendable, Equatable {
        public var user: String
        public var password: String
        /// nil: PLAIN if the server offers it, else LOGIN.
        public var mechanism: AuthMechanism?
        public init(user: String, password: String, mechanism: AuthMechanism? = nil) {
            self.user = user
            self.password = password
            self.mechanism = mechanism
        }
    }

    public enum Action: Equatable, Sendable {
        /// Nothing to do until the next line.
        case wait
        case send([UInt8])
        /// Start the TLS handshake now, before reading anything more, and
        /// call `tlsEstablished()` when it completes.
        case startTLS
        /// The server took the message; `reply` is its answer (the queue
        /// id, usually). Write `farewell` (QUIT) and close without waiting.
        case delivered(reply: String, farewell: [UInt8])
        /// Write `farewell` (QUIT, or nothing when the server is beyond
        /// talking to) and close.
        case failed(SMTPFailure, farewell: [UInt8])
    }

    /// RFC 5321 allows 512 bytes; this leaves room for servers that ramble.
    public static let maxLineBytes = 4096
    public static let maxReplyLines = 100
    static let quit = Array("QUIT\r\n".utf8)

    private enum Phase: Equatable {
        case greeting, ehlo, helo, startTLS, handshaking
        case authPlain(answered: Bool)
        case authLogin(answered: Int)
        case mailFrom
        case rcptTo(Int)
        case data, message
    }

    public let security: Security
    public let heloName: String
    public let from: String
    public let recipients: [String]
    private let credentials: Credentials?
    private let message: [UInt8]
    private var phase = Phase.greeting
    private var tlsActive: Bool
    private var over = false
    private var capabilities: [String: [String]] = [:]
    private var replyCode: Int?
    private var replyLines: [String] = []

    /// `from` and `to` may be bare addresses or `Name <address>`; `message`
    /// is the whole RFC 5322 message (headers and body), in any line
    /// endings. Throws for addresses that would break the envelope.
    public init(heloName: String, security: Security, credentials: Credentials?, from: String, to: [String], message: [UInt8]) throws(SMTPFailure) {
        self.security = security
        self.heloName = Self.validHeloName(heloName)
        self.credentials = credentials
        self.from = try Self.envelopeAddress(from, what: "sender")
        var recipients: [String] = []
        for address in to { recipients.append(try Self.envelopeAddress(address, what: "recipient")) }
        guard !recipients.isEmpty else { throw SMTPFailure("SMTP needs at least one recipient", permanent: true) }
        for address in recipients where address.isEmpty { throw SMTPFailure("SMTP recipient address is empty", permanent: true) }
        self.recipients = recipients
        self.message = message
        tlsActive = security == .tls
    }

    /// What the dialogue waits for, for a timeout's message
    /// ("SMTP timed out waiting for the reply to RCPT TO:<a@b>").
    public var step: String {
        switch phase {
        case .greeting: "the greeting"
        case .ehlo: "EHLO"
        case .helo: "HELO"
        case .startTLS: "STARTTLS"
        case .handshaking: "the TLS handshake"
        case .authPlain, .authLogin: "AUTH"
        case .mailFrom: "MAIL FROM"
        case .rcptTo(let index): "RCPT TO:<\(recipients[index])>"
        case .data: "DATA"
        case .message: "the message"
        }
    }

    public var isFinished: Bool { over }

    // MARK: Events

    /// One line from the server, without its line ending (a trailing CR is
    /// dropped). A reply is handled when its last line (`250 …`, not
    /// `250-…`) arrives.
    public mutating func received(line: some Collection<UInt8>) -> Action {
        guard !over else { return .wait }
        guard line.count <= Self.maxLineBytes else {
            return fail("SMTP reply line longer than \(Self.maxLineBytes) bytes during \(step)", permanent: false, farewell: [])
        }
        var bytes = Array(line)
        if bytes.last == 13 { bytes.removeLast() }
        if phase == .handshaking {
            // Bytes after the 220 belong before TLS: an attempt to inject
            // plaintext commands into the encrypted session (CVE-2011-0411).
            return fail("SMTP STARTTLS: the server sent more after its 220, before the TLS handshake", permanent: false, farewell: [])
        }
        guard bytes.count >= 3, bytes[0] >= UInt8(ascii: "2"), bytes[0] <= UInt8(ascii: "5"),
              bytes[1...2].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              bytes.count == 3 || bytes[3] == UInt8(ascii: " ") || bytes[3] == UInt8(ascii: "-")
        else {
            return fail("SMTP malformed reply during \(step): '\(Self.printable(bytes[...].prefix(80)))'", permanent: false, farewell: [])
        }
        let code = bytes[0...2].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        if let replyCode, replyCode != code {
            return fail("SMTP malformed reply during \(step): a \(code) line inside a \(replyCode) reply", permanent: false, farewell: [])
        }
        replyCode = code
        replyLines.append(bytes.count > 4 ? Self.printable(bytes[4...]) : "")
        if bytes.count > 3, bytes[3] == UInt8(ascii: "-") {
            guard replyLines.count < Self.maxReplyLines else {
                return fail("SMTP reply of more than \(Self.maxReplyLines) lines during \(step)", permanent: false, farewell: [])
            }
            return .wait
        }
        let lines = replyLines
        replyCode = nil
        replyLines = []
        return handle(Reply(code: code, lines: lines))
    }

    /// The STARTTLS handshake completed: greet again over TLS.
    public mutating func tlsEstablished() -> Action {
        guard !over else { return .wait }
        guard phase == .handshaking else {
            return fail("SMTP TLS began during \(step), not after STARTTLS", permanent: false, farewell: [])
        }
        tlsActive = true
        capabilities = [:]  // what the server said in plaintext no longer counts
        phase = .ehlo
        return send("EHLO \(heloName)")
    }

    /// The server closed the connection (or it broke) before the end.
    public mutating func connectionClosed() -> Action {
        guard !over else { return .wait }
        return fail("SMTP connection closed by the server during \(step)", permanent: false, farewell: [])
    }

    // MARK: Replies

    struct Reply {
        var code: Int
        var lines: [String]
        /// "535 5.7.8 Authentication credentials invalid", continuation
        /// lines joined by spaces, bounded.
        var text: String {
            let joined = ([String(code)] + lines.filter { !$0.isEmpty }).joined(separator: " ")
            return joined.count > 300 ? String(joined.prefix(300)) + "…" : joined
        }
    }

    private mutating func handle(_ reply: Reply) -> Action {
        switch phase {
        case .greeting:
            guard reply.code == 220 else { return refused(reply) }
            phase = .ehlo
            return send("EHLO \(heloName)")
        case .ehlo:
            if reply.code == 250 {
                capabilities = Self.capabilities(reply.lines.dropFirst())
                return afterGreeting()
            }
            // A server from before ESMTP: HELO does when nothing needs an extension.
            if (500...504).contains(reply.code), security != .starttls, credentials == nil {
                phase = .helo
                return send("HELO \(heloName)")
            }
            return refused(reply)
        case .helo:
            guard reply.code == 250 else { return refused(reply) }
            return mailFrom()
        case .startTLS:
            guard reply.code == 220 else { return refused(reply) }
            phase = .handshaking
            return .startTLS
        case .handshaking:
            return fail("SMTP STARTTLS: the server sent more after its 220, before the TLS handshake", permanent: false, farewell: [])
        case .authPlain(let answered):
            if reply.code == 235 { return mailFrom() }
            // A server that ignored the initial response asks with an empty challenge.
            if reply.code == 334, !answered, let credentials {
                phase = .authPlain(answered: true)
                return .send(Self.plainResponse(credentials))
            }
            return refused(reply)
        case .authLogin(let answered):
            if reply.code == 235, answered == 2 { return mailFrom() }
            guard reply.code == 334, answered < 2, let credentials else { return refused(reply) }
            phase = .authLogin(answered: answered + 1)
            return send(Self.base64(Array((answered == 0 ? credentials.user : credentials.password).utf8)))
        case .mailFrom:
            guard reply.code == 250 else { return refused(reply) }
            phase = .rcptTo(0)
            return send("RCPT TO:<\(recipients[0])>")
        case .rcptTo(let index):
            // 251: not local, will forward.
            guard reply.code == 250 || reply.code == 251 else { return refused(reply) }
            if index + 1 < recipients.count {
                phase = .rcptTo(index + 1)
                return send("RCPT TO:<\(recipients[index + 1])>")
            }
            phase = .data
            return send("DATA")
        case .data:
            guard reply.code == 354 else { return refused(reply) }
            phase = .message
            return .send(Self.dataPayload(message))
        case .message:
            guard reply.code == 250 else { return refused(reply) }
            over = true
            return .delivered(reply: reply.text, farewell: Self.quit)
        }
    }

    /// After a successful EHLO: upgrade, authenticate, or begin the mail.
    private mutating func afterGreeting() -> Action {
        if security == .starttls, !tlsActive {
            guard capabilities["STARTTLS"] != nil else {
                return fail("SMTP STARTTLS is not offered by the server (tls=starttls; it offers \(offered))", permanent: true, farewell: Self.quit)
            }
            phase = .startTLS
            return send("STARTTLS")
        }
        guard let credentials else { return mailFrom() }
        guard tlsActive || security == .none else {
            return fail("SMTP AUTH not sent: the connection is not encrypted (tls=none allows it)", permanent: true, farewell: Self.quit)
        }
        let mechanisms = Set((capabilities["AUTH"] ?? []).map { $0.uppercased() })
        let mechanism: AuthMechanism
        if let chosen = credentials.mechanism {
            guard mechanisms.contains(chosen.rawValue.uppercased()) else {
                let others = mechanisms.isEmpty ? "no AUTH at all" : "AUTH " + mechanisms.sorted().joined(separator: " ")
                return fail("SMTP AUTH \(chosen.rawValue.uppercased()) is not offered by the server (auth=\(chosen.rawValue); it offers \(others))", permanent: true, farewell: Self.quit)
            }
            mechanism = chosen
        } else if mechanisms.contains("PLAIN") {
            mechanism = .plain
        } else if mechanisms.contains("LOGIN") {
            mechanism = .login
        } else {
            let others = mechanisms.isEmpty ? "no AUTH at all" : "only AUTH " + mechanisms.sorted().joined(separator: " ")
            return fail("SMTP AUTH: the server offers neither PLAIN nor LOGIN (it offers \(others))", permanent: true, farewell: Self.quit)
        }
        switch mechanism {
        case .plain:
            phase = .authPlain(answered: false)
            return .send(Array("AUTH PLAIN ".utf8) + Self.plainResponse(credentials))
        case .login:
            phase = .authLogin(answered: 0)
            return send("AUTH LOGIN")
        }
    }

    private mutating func mailFrom() -> Action {
        var command = "MAIL FROM:<\(from)>"
        if capabilities["8BITMIME"] != nil, message.contains(where: { $0 >= 0x80 }) { command += " BODY=8BITMIME" }
        if let size = capabilities["SIZE"] {
            let limit = size.first.flatMap { Int($0) } ?? 0
            if limit > 0, message.count > limit {
                return fail("SMTP message of \(message.count) bytes is over the server's limit of \(limit) (SIZE)", permanent: true, farewell: Self.quit)
            }
            command += " SIZE=\(message.count)"
        }
        phase = .mailFrom
        return send(command)
    }

    private func send(_ line: String) -> Action { .send(Array((line + "\r\n").utf8)) }

    private mutating func refused(_ reply: Reply) -> Action {
        let name: String
        switch phase {
        case .greeting: name = "SMTP server refused the connection"
        case .message: name = "SMTP message refused"
        default: name = "SMTP \(step) refused"
        }
        switch reply.code {
        case 400..<500: return fail("\(name): \(reply.text)", permanent: false, code: reply.code, farewell: Self.quit)
        case 500..<600: return fail("\(name): \(reply.text)", permanent: true, code: reply.code, farewell: Self.quit)
        default: return fail("SMTP unexpected reply to \(step): \(reply.text)", permanent: false, code: reply.code, farewell: Self.quit)
        }
    }

    private mutating func fail(_ text: String, permanent: Bool, code: Int? = nil, farewell: [UInt8]) -> Action {
        over = true
        return .failed(SMTPFailure(text, permanent: permanent, code: code), farewell: farewell)
    }

    private var offered: String {
        capabilities.isEmpty ? "no extensions" : capabilities.keys.sorted().joined(separator: ", ")
    }
}
