internal import PilotAlerts
internal import PilotCrypto

/// The few ASN.1 DER encodings a self-signed certificate needs, as pure
/// functions from values to bytes: tag, length, content. Only what
/// `SelfSignedCertificate` writes; nothing here parses.
enum DER {
    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        [tag] + length(content.count) + content
    }

    /// Short form below 128, else 0x80 | the count of big-endian length bytes.
    static func length(_ count: Int) -> [UInt8] {
        guard count >= 0x80 else { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var rest = count
        while rest > 0 { bytes.insert(UInt8(rest & 0xFF), at: 0); rest >>= 8 }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func sequence(_ items: [[UInt8]]) -> [UInt8] { tlv(0x30, items.flatMap { $0 }) }
    static func set(_ items: [[UInt8]]) -> [UInt8] { tlv(0x31, items.flatMap { $0 }) }

    /// A non-negative integer from big-endian bytes: leading zeros dropped,
    /// one 0x00 put back when the top bit would make it negative.
    static func integer(unsigned bytes: [UInt8]) -> [UInt8] {
        var digits = Array(bytes.drop { $0 == 0 })
        if digits.isEmpty || digits[0] & 0x80 != 0 { digits.insert(0, at: 0) }
        return tlv(0x02, digits)
    }

    static func integer(_ value: UInt8) -> [UInt8] { integer(unsigned: [value]) }

    /// Dotted text such as "1.2.840.10045.2.1"; the arcs are constants of
    /// this file, so a malformed one is a programming error.
    static func objectIdentifier(_ dotted: String) -> [UInt8] {
        let arcs = dotted.split(separator: ".").map { UInt64($0)! }
        precondition(arcs.count >= 2 && arcs[0] <= 2, "bad object identifier \(dotted)")
        var content: [UInt8] = []
        for arc in [arcs[0] * 40 + arcs[1]] + arcs.dropFirst(2) {
            var chunk = [UInt8(arc & 0x7F)]
            var rest = arc >> 7
            while rest > 0 { chunk.insert(UInt8(rest & 0x7F) | 0x80, at: 0); rest >>= 7 }
            content += chunk
        }
        return tlv(0x06, content)
    }

    static func bitString(_ bytes: [UInt8], unusedBits: UInt8 = 0) -> [UInt8] { tlv(0x03, [unusedBits] + bytes) }
    static func octetString(_ bytes: [UInt8]) -> [UInt8] { tlv(0x04, bytes) }
    static func utf8String(_ text: String) -> [UInt8] { tlv(0x0C, Array(text.utf8)) }
    static let `true`: [UInt8] = [0x01, 0x01, 0xFF]

    /// `[number]` around DER (explicit tagging, constructed).
    static func explicit(_ number: UInt8, _ content: [UInt8]) -> [UInt8] { tlv(0xA0 | number, content) }

    /// `[number]` in place of a primitive's own tag (implicit tagging).
    static func implicit(_ number: UInt8, _ bytes: [UInt8]) -> [UInt8] { tlv(0x80 | number, bytes) }

    /// RFC 5280's Time: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime
    /// (YYYYMMDDHHMMSSZ) from 2050 on.
    static func time(_ unixSeconds: Int64) -> [UInt8] {
        let digits = TimeText.rfc3339(unixSeconds).filter { $0.isNumber || $0 == "Z" }
        let year = Int(digits.prefix(4)) ?? 0
        return (1950...2049).contains(year) ? tlv(0x17, Array(digits.dropFirst(2).utf8)) : tlv(0x18, Array(digits.utf8))
    }

    /// RFC 7468's textual encoding: base64 in lines of 64 between the labels.
    static func pem(_ label: String, _ der: [UInt8]) -> String {
        var text = Substring(Base64.encode(der))
        var lines: [Substring] = []
        while !text.isEmpty { lines.append(text.prefix(64)); text = text.dropFirst(64) }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }
}
