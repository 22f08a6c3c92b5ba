public import PilotCore

/// Where a secret comes from: `@/etc/pilot/slack-url` (a file),
/// `env:SLACK_URL` (the environment), or inline (which `ps` shows).
/// `description` never shows an inline secret or a file's content.
public enum SecretSource: Sendable, Equatable, CustomStringConvertible {
    case inline(String)
    case file(String)
    case environment(String)

    public init(_ text: String) {
        if text.hasPrefix("@"), text.count > 1 { self = .file(String(text.dropFirst())) }
        else if text.hasPrefix("env:"), text.count > 4 { self = .environment(String(text.dropFirst(4))) }
        else { self = .inline(text) }
    }

    public var isInline: Bool { if case .inline = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .inline: return "(inline)"
        case .file(let path): return "@" + path
        case .environment(let name): return "env:" + name
        }
    }

    /// The secret's value: a file's first line, or the variable's value.
    public func resolve(environment: (String) -> String?, readFile: (String) throws -> String) throws(ParseError) -> String {
        switch self {
        case .inline(let value):
            return value
        case .environment(let name):
            guard let value = environment(name), !value.isEmpty else { throw ParseError("secret", description, "the environment variable \(name) is not set") }
            return value
        case .file(let path):
            let text: String
            do { text = try readFile(path) } catch { throw ParseError("secret", description, "cannot read it: \(error)") }
            let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            let value = String(line.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
            guard !value.isEmpty else { throw ParseError("secret", description, "the file is empty") }
            return value
        }
    }
}

/// An http:// or https:// URL, checked when the router starts.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var scheme: String
    public var host: String
    public var path: String

    public init(_ text: String, what: String = "URL") throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(what, Self.masked(text), reason) }
        guard let separator = text.firstRange(of: "://") else { throw fail("not an http:// or https:// URL") }
        scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw fail("not an http:// or https:// URL") }
        let rest = text[separator.upperBound...]
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<end]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty, !authority.hasPrefix(":") else { throw fail("it names no host") }
        guard !text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) else { throw fail("it contains spaces or control characters") }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port) else { throw fail("its port is not a number from 1 to 65535") }
            host = String(authority[..<colon])
        } else {
            host = String(authority)
        }
        path = rest[end...].isEmpty ? "/" : String(rest[end...])
        self.text = text
    }

    /// Scheme, host and port only: what logs and `pilot status` show (a
    /// Slack webhook's path is its secret).
    public var description: String { Self.masked(text) }

    public static func masked(_ text: String) -> String {
        guard let separator = text.firstRange(of: "://") else { return "(not a URL)" }
        let rest = text[separator.upperBound...]
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<end]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return String(text[..<separator.upperBound]) + authority + (rest[end...].isEmpty ? "" : "/…")
    }
}

/// One receiver as a flag or config line gives it:
///
///     slack:ops=@/etc/pilot/slack-url
///     pagerduty:oncall=env:PD_ROUTING_KEY
///     webhook:hook=http://127.0.0.1:9000/alerts max_alerts=100
///     alertmanager:am=http://127.0.0.1:9093 resend=1m
///     email:team=smtp://mail.example.com:587 to=ops@example.com user=pilot password=@/etc/pilot/smtp-password
///     email:local=/usr/sbin/sendmail to=root
///     exec:notify=/usr/local/bin/notify timeout=10s
///
/// Options every kind takes: `rate=1/s` (at most so many notifications
/// per second or minute; Slack's default 1/s), `send_resolved=false`.
public struct ReceiverSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case slack, pagerduty, webhook, alertmanager, email, exec }

    public var kind: Kind
    public var name: String
    /// The URL, routing key, SMTP server or command, as written.
    public var target: SecretSource
    public var options: [String: String]
    /// At most `count` notifications per `perSeconds`.
    public var rate: (count: Int, perSeconds: Int)?
    public var sendResolved: Bool

    public static func == (a: ReceiverSpec, b: ReceiverSpec) -> Bool {
        a.kind == b.kind && a.name == b.name && a.target == b.target && a.options == b.options && a.sendResolved == b.sendResolved
            && a.rate?.count == b.rate?.count && a.rate?.perSeconds == b.rate?.perSeconds
    }

    /// The options each kind accepts beyond the common ones.
    static let kindOptions: [Kind: Set<String>] = [
        .slack: ["channel"],
        .pagerduty: ["url", "severity"],
        .webhook: ["max_alerts", "bearer"],
        .alertmanager: ["resend"],
        .email: ["to", "from", "user", "password", "tls", "ca", "insecure", "auth", "timeout"],
        .exec: ["timeout", "arg"],
    ]
    static let commonOptions: Set<String> = ["rate", "send_resolved"]
    /// Options whose values are secrets (`@FILE`, `env:NAME` or inline).
    public static let secretOptions: Set<String> = ["password", "bearer"]

    public init(parsing text: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError("receiver", Self.masked(text), reason) }
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)[...]
        guard let head = words.popFirst(), let colon = head.firstIndex(of: ":"), let equals = head.firstIndex(of: "="), colon < equals else {
            throw fail("use KIND:NAME=TARGET, e.g. slack:ops=@/etc/pilot/slack-url (kinds: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let kindText = String(head[..<colon])
        guard let kind = Kind(rawValue: kindText) else {
            throw fail("unknown receiver kind '\(kindText)' (kinds: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let name = String(head[head.index(after: colon)..<equals])
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw fail("the name '\(name)' must be letters, digits, - or _")
        }
        let targetText = String(head[head.index(after: equals)...])
        guard !targetText.isEmpty else { throw fail("\(kindText):\(name) has no target after =") }
        self.kind = kind
        self.name = name
        target = SecretSource(targetText)
        options = [:]
        for word in words {
            guard let split = word.firstIndex(of: "="), split != word.startIndex else { throw fail("'\(Self.maskedOption(word))' is not KEY=VALUE") }
            let key = String(word[..<split])
            guard Self.commonOptions.contains(key) || Self.kindOptions[kind]!.contains(key) else {
                let known = (Self.commonOptions.union(Self.kindOptions[kind]!)).sorted().joined(separator: ", ")
                throw fail("\(kind.rawValue) receivers have no option '\(key)' (they take \(known))")
            }
            let value = String(word[word.index(after: split)...])
            if key == "arg", let previous = options[key] { options[key] = previous + "\u{1F}" + value } else { options[key] = value }
        }
        sendResolved = options["send_resolved"].map { $0 != "false" && $0 != "no" && $0 != "0" } ?? true
        if let rateText = options["rate"] {
            let parts = rateText.split(separator: "/")
            guard parts.count == 2, let count = Int(parts[0]), count > 0, count <= 100_000, let unit = ["s": 1, "m": 60, "h": 3600][String(parts[1])] else {
                throw fail("rate '\(rateText)' must be like 1/s, 30/m or 100/h")
            }
            rate = (count, unit)
        } else {
            rate = kind == .slack ? (1, 1) : nil
        }
        try check(fail)
    }

    /// Shapes that can be checked without reading any secret.
    private func check(_ fail: (String) -> ParseError) throws(ParseError) {
        if case .inline(let value) = target {
            switch kind {
            case .slack, .webhook, .alertmanager: _ = try HTTPURL(value, what: "\(kind.rawValue) URL")
            case .pagerduty: guard value.count >= 8, value.allSatisfy(\.isASCII) else { throw fail("the routing key looks wrong (32 characters from PagerDuty)") }
            case .email:
                if !value.hasPrefix("/") {
                    guard value.hasPrefix("smtp://") || value.hasPrefix("smtps://") else { throw fail("email's target is smtp://HOST:PORT, smtps://HOST:PORT or a sendmail path") }
                }
            case .exec: guard value.hasPrefix("/") else { throw fail("exec's target is an absolute path to a command") }
            }
        }
        if let url = options["url"] { _ = try HTTPURL(url, what: "pagerduty url") }
        if kind == .email {
            guard let to = options["to"], !to.isEmpty, to.split(separator: ",").allSatisfy({ $0.contains("@") || !$0.contains(" ") }) else {
                throw fail("email receivers need to=ADDRESS[,ADDRESS]")
            }
            if let tls = options["tls"], !["starttls", "none", "tls"].contains(tls) { throw fail("tls must be starttls, tls or none") }
            if let auth = options["auth"], !["plain", "login"].contains(auth) { throw fail("auth must be plain or login") }
        }
        for key in ["timeout", "resend"] {
            if let text = options[key] {
                let seconds: Int64
                do { seconds = try DurationText.seconds(text) } catch { throw fail("\(key): \(error.reason)") }
                guard seconds > 0 else { throw fail("\(key) must be more than 0") }
            }
        }
        if let text = options["max_alerts"], Int(text).map({ $0 >= 0 }) != true { throw fail("max_alerts must be a whole number (0: no limit)") }
    }

    /// Is the target a secret written inline (which `ps` shows)?
    public var inlineSecrets: [String] {
        var found: [String] = []
        if target.isInline, kind == .slack || kind == .pagerduty { found.append("\(kind.rawValue):\(name)'s " + (kind == .slack ? "URL" : "routing key")) }
        for key in Self.secretOptions.sorted() where options[key].map({ SecretSource($0).isInline }) == true { found.append("\(kind.rawValue):\(name)'s \(key)") }
        return found
    }

    /// What logs and `pilot status` show of the target: secrets masked.
    public var targetDescription: String {
        switch target {
        case .inline(let value):
            switch kind {
            case .pagerduty: return "routing key …" + value.suffix(4)
            case .slack, .webhook, .alertmanager: return HTTPURL.masked(value)
            case .email: return value.hasPrefix("/") ? value : HTTPURL.masked(value)
            case .exec: return value
            }
        case .file, .environment: return target.description
        }
    }

    public func duration(_ key: String, default value: Int64) -> Int64 {
        options[key].flatMap { try? DurationText.seconds($0) } ?? value
    }

    /// The text with every secret-looking part hidden, for error messages.
    static func masked(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).enumerated().map { index, word -> String in
            if index == 0, let equals = word.firstIndex(of: "=") {
                let value = word[word.index(after: equals)...]
                let shown = value.hasPrefix("@") || value.hasPrefix("env:") || value.hasPrefix("/") ? String(value)
                    : value.contains("://") ? HTTPURL.masked(String(value)) : "…"
                return String(word[...equals]) + shown
            }
            return maskedOption(String(word))
        }.joined(separator: " ")
    }

    static func maskedOption(_ word: String) -> String {
        guard let split = word.firstIndex(of: "=") else { return word }
        let key = String(word[..<split])
        let value = word[word.index(after: split)...]
        return secretOptions.contains(key) && !value.hasPrefix("@") && !value.hasPrefix("env:") ? key + "=…" : word
    }
}
