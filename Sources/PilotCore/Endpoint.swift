/// A `HOST:PORT` endpoint as given on the command line (`--registry rv.example:9000`).
/// IPv6 literals go in brackets: `[2001:db8::1]:9000`.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `listening: true` accepts port 0 (the system picks a free port).
    public init(parsing text: String, defaultPort: UInt16? = nil, listening: Bool = false) throws(ParseError) {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ParseError("endpoint", text, "missing ']' after IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw ParseError("endpoint", text, "expected ':PORT' after ']'") }
                portText = rest.dropFirst()
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw ParseError("endpoint", text, "put an IPv6 address in brackets, e.g. [::1]:9000") }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
        }
        guard !host.isEmpty else { throw ParseError("endpoint", text, "the host is empty") }
        guard host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") }) else {
            throw ParseError("endpoint", text, "the host has a space, slash, bracket or non-ASCII character")
        }
        let port: UInt16
        if let portText {
            guard let value = UInt16(portText), value > 0 || listening else {
                throw ParseError("endpoint", text, "port '\(portText)' is not a number from \(listening ? 0 : 1) to 65535")
            }
            port = value
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw ParseError("endpoint", text, "expected HOST:PORT")
        }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
