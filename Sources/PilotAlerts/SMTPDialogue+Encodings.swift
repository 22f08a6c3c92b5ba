/// The encodings of SMTP: EHLO's capabilities, the DATA payload (dot-
/// stuffed, CRLF), envelope addresses, AUTH PLAIN's response and base64,
/// and the framer that turns what a server sends into reply lines.
extension SMTPDialogue {
    /// EHLO's lines after the first: keyword → parameters, keywords upper-case.
    /// `AUTH=LOGIN PLAIN` (from before RFC 4954) counts as AUTH.
    static func capabilities(_ lines: some Sequence<String>) -> [String: [String]] {
        var found: [String: [String]] = [:]
        for line in lines {
            var words = line.split(separator: " ").map(String.init)
            guard !words.isEmpty else { continue }
            var keyword = words.removeFirst().uppercased()
            if keyword.hasPrefix("AUTH="), keyword.count > 5 {
                words.insert(String(keyword.dropFirst(5)), at: 0)
                keyword = "AUTH"
            }
            found[keyword, default: []] += words
        }
        return found
    }

    /// The message as DATA carries it: every line ending CRLF (bare LF and
    /// bare CR too), a "." that starts a line doubled, and the final
    /// `CRLF . CRLF`.
    public static func dataPayload(_ message: [UInt8]) -> [UInt8] {
        let cr: UInt8 = 13, lf: UInt8 = 10, dot = UInt8(ascii: ".")
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 32 + 5)
        var atLineStart = true
        var index = 0
        while index < message.count {
            let byte = message[index]
            index += 1
            if byte == cr || byte == lf {
                if byte == cr, index < message.count, message[index] == lf { index += 1 }
                out += [cr, lf]
                atLineStart = true
                continue
            }
            if atLineStart, byte == dot { out.append(dot) }
            out.append(byte)
            atLineStart = false
        }
        if !atLineStart { out += [cr, lf] }
        out += [dot, cr, lf]
        return out
    }

    /// `Name <a@b>` → `a@b`; refuses what would break the command line.
    static func envelopeAddress(_ text: String, what: String) throws(SMTPFailure) -> String {
        var address = Substring(text)
        if let open = address.lastIndex(of: "<"), address.hasSuffix(">") {
            address = address[address.index(after: open)..<address.index(before: address.endIndex)]
        }
        address = address.drop(while: { $0 == " " })
        while address.last == " " { address.removeLast() }
        guard address.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "<" && $0 != ">" }) else {
            throw SMTPFailure("SMTP \(what) address '\(printable(Array(text.utf8).prefix(80)))' has spaces, control characters or <>", permanent: true)
        }
        return String(address)
    }

    /// EHLO's argument must be a domain (or an address literal); a
    /// hostname that is not one becomes `localhost`.
    static func validHeloName(_ name: String) -> String {
        let good = !name.isEmpty && name.utf8.count <= 255 && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_")
        }
        return good ? name : "localhost"
    }

    /// RFC 4616: base64 of authzid NUL authcid NUL password, authzid empty.
    static func plainResponse(_ credentials: Credentials) -> [UInt8] {
        Array((base64([0] + Array(credentials.user.utf8) + [0] + Array(credentials.password.utf8)) + "\r\n").utf8)
    }

    /// Standard base64 with padding (PilotCrypto has one, but this module
    /// stays free of it).
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            let b0 = UInt32(bytes[index])
            let b1 = count > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = count > 2 ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(triple >> 18 & 63)])
            out.append(alphabet[Int(triple >> 12 & 63)])
            out.append(count > 1 ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
            out.append(count > 2 ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Server text for an error message: control characters shown as '?'.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        var text = String.UnicodeScalarView()
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            text.append(scalar.value < 0x20 || scalar.value == 0x7F ? "?" : scalar)
        }
        return String(text)
    }
}

/// Splits what the server sends into lines for `SMTPDialogue`, holding at
/// most one partial line: once more than `maxLineBytes` come without a
/// line feed they are handed on as a "line" for the dialogue to refuse.
public struct SMTPLineFramer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    /// Nothing buffered: after STARTTLS's 220 anything here came in
    /// plaintext and must not be read as if it were encrypted.
    public var isEmpty: Bool { start == buffer.count }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0, start == buffer.count || start > 4096 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line without its CRLF (or LF), if there is one.
    public mutating func nextLine() -> [UInt8]? {
        guard let newline = buffer[start...].firstIndex(of: 10) else {
            guard buffer.count - start > SMTPDialogue.maxLineBytes + 1 else { return nil }
            return takeRest()
        }
        var line = Array(buffer[start..<newline])
        if line.last == 13 { line.removeLast() }
        start = newline + 1
        return line
    }

    /// Whatever is buffered, emptying the framer.
    public mutating func takeRest() -> [UInt8] {
        let rest = Array(buffer[start...])
        buffer = []
        start = 0
        return rest
    }
}
