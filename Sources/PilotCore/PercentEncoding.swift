/// Percent-decoding (RFC 3986) of URL parts and of forms.
public enum PercentEncoding {
    /// Decodes `%XX` escapes, and `+` as a space when `plusIsSpace` (forms).
    /// An escape that is not two hex digits is kept as it is and reported in
    /// `malformed`, for callers that must refuse it.
    public static func decode(_ text: some StringProtocol, plusIsSpace: Bool) -> (text: String, malformed: Bool) {
        var bytes: [UInt8] = []
        var malformed = false
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            if byte == UInt8(ascii: "+"), plusIsSpace {
                bytes.append(0x20)
            } else if byte == UInt8(ascii: "%") {
                if input.count >= 2, let high = hexValue(input[input.startIndex]), let low = hexValue(input[input.startIndex + 1]) {
                    bytes.append(high << 4 | low)
                    input = input.dropFirst(2)
                } else {
                    malformed = true
                    bytes.append(byte)
                }
            } else {
                bytes.append(byte)
            }
        }
        return (String(decoding: bytes, as: UTF8.self), malformed)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
