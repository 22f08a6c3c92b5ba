internal import CSodium

public enum SecureRandom {
    /// `count` bytes from the kernel's CSPRNG (through libsodium).
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensure()
        guard count > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return out
    }
}

public enum ConstantTime {
    /// Compares two byte strings in time that depends only on their length.
    /// Different lengths compare unequal (length is not secret).
    public static func equal(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        Sodium.ensure()
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in sodium_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }
}

public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String {
        Sodium.ensure()
        let capacity = (bytes.count + 2) / 3 * 4 + 1
        var out = [CChar](repeating: 0, count: capacity)
        bytes.withUnsafeBufferPointer { input in
            _ = sodium_bin2base64(&out, capacity, input.baseAddress, input.count, sodium_base64_VARIANT_ORIGINAL)
        }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func decode(_ text: String, what: String = "value") throws(CryptoError) -> [UInt8] {
        Sodium.ensure()
        let input = Array(text.utf8)
        var out = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
        var length = 0
        // A nil end pointer makes libsodium refuse any character outside the alphabet.
        let status = input.withUnsafeBufferPointer { raw in
            raw.withMemoryRebound(to: CChar.self) { chars in
                sodium_base642bin(&out, out.count, chars.baseAddress, chars.count, nil, &length, nil, sodium_base64_VARIANT_ORIGINAL)
            }
        }
        guard status == 0, !input.isEmpty else { throw .invalidEncoding(what: what, encoding: "base64") }
        return Array(out.prefix(length))
    }
}

public enum Hex {
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) throws(CryptoError) -> [UInt8] {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { throw .invalidEncoding(what: "hex string", encoding: "hex") }
        func nibble(_ c: UInt8) throws(CryptoError) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: throw .invalidEncoding(what: "hex string", encoding: "hex")
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            out.append(try nibble(chars[index]) << 4 | nibble(chars[index + 1]))
            index += 2
        }
        return out
    }
}
