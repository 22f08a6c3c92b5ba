internal import CSodium

public enum SHA256 {
    public static let byteCount = Int(crypto_hash_sha256_BYTES)

    public static func hash(_ message: [UInt8]) -> [UInt8] {
        Sodium.ensure()
        var digest = [UInt8](repeating: 0, count: byteCount)
        crypto_hash_sha256(&digest, message, UInt64(message.count))
        return digest
    }
}

public enum HMACSHA256 {
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        Sodium.ensure()
        var state = crypto_auth_hmacsha256_state()
        var mac = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_BYTES))
        crypto_auth_hmacsha256_init(&state, key, key.count)
        crypto_auth_hmacsha256_update(&state, message, UInt64(message.count))
        crypto_auth_hmacsha256_final(&state, &mac)
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return mac
    }
}

/// HKDF with HMAC-SHA256 as the Noise framework uses it: from a chaining
/// key and input key material, two (or three) 32-byte outputs.
public enum HKDF {
    public static func derive(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputs: Int) -> [[UInt8]] {
        precondition((1...3).contains(outputs), "HKDF yields one to three outputs")
        let temporaryKey = HMACSHA256.authenticate(inputKeyMaterial, key: chainingKey)
        var results: [[UInt8]] = []
        var previous: [UInt8] = []
        for index in 1...outputs {
            previous = HMACSHA256.authenticate(previous + [UInt8(index)], key: temporaryKey)
            results.append(previous)
        }
        return results
    }
}
