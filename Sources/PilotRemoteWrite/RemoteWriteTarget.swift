public import PilotCore

/// Where remote write sends: an http:// or https:// URL. Credentials in the
/// URL (`https://user:password@host/api/v1/push`) become basic auth and are
/// kept out of `display`, which is what logs show.
public struct RemoteWriteTarget: Sendable, Equatable {
    /// The URL without credentials.
    public var url: String
    public var user: String?
    public var password: String?
    public var display: String { url }

    public init(_ text: String) throws(ParseError) {
        let kind = "remote-write URL"
        guard let separator = text.firstRange(of: "://") else { throw ParseError(kind, text, "not an http:// or https:// URL") }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw ParseError(kind, Self.redacted(text), "not an http:// or https:// URL") }
        let rest = text[separator.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let parts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = try Self.percentDecoded(parts[0])
            password = parts.count > 1 ? try Self.percentDecoded(parts[1]) : ""
        }
        guard !authority.isEmpty, !authority.hasPrefix(":"), authority.allSatisfy({ !$0.isWhitespace }) else {
            throw ParseError(kind, Self.redacted(text), "it names no host")
        }
        guard !path.contains(where: \.isWhitespace) else { throw ParseError(kind, Self.redacted(text), "it contains spaces") }
        url = "\(scheme)://\(authority)\(path.isEmpty ? "/" : path)"
    }

    /// Headers pilot sets itself, which a `--remote-write-header` may not replace.
    static let reservedHeaders: Set<String> = ["content-encoding", "content-type", "content-length", "x-prometheus-remote-write-version", "host",
                                               "transfer-encoding", "connection"]

    /// One extra header for every request, `Name: value` (a tenant's
    /// `X-Scope-OrgID`, an `Authorization: Bearer …`). Errors name the
    /// header, never its value, which may be a secret.
    public static func header(_ text: String) throws(ParseError) -> (name: String, value: String) {
        let kind = "remote-write header"
        guard let colon = text.firstIndex(of: ":") else { throw ParseError(kind, "…", "use 'Name: value'") }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        let token = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        guard !name.isEmpty, name.count <= 256, name.allSatisfy(token.contains) else { throw ParseError(kind, "\(name.prefix(64)): …", "the name is not an HTTP token") }
        guard !reservedHeaders.contains(name.lowercased()) else { throw ParseError(kind, "\(name): …", "pilot sets this header itself") }
        guard !value.isEmpty, value.utf8.count <= 8_192, !value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) else {
            throw ParseError(kind, "\(name): …", "the value is empty, too long or has control characters")
        }
        return (name, value)
    }

    /// The text with anything between :// and @ replaced, for error messages.
    static func redacted(_ text: String) -> String {
        guard let separator = text.firstRange(of: "://"), let at = text[separator.upperBound...].firstIndex(of: "@") else { return text }
        return String(text[..<separator.upperBound]) + "…@" + text[text.index(after: at)...]
    }

    static func percentDecoded(_ text: Substring) throws(ParseError) -> String {
        let decoded = PercentEncoding.decode(text, plusIsSpace: false)
        guard !decoded.malformed else { throw ParseError("remote-write URL", "…", "its credentials have a bad %-escape") }
        return decoded.text
    }
}
