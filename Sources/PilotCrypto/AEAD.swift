internal import CSodium

/// The two AEADs of the design. AES-256-GCM only where the CPU has AES-NI
/// (libsodium refuses it otherwise); ChaCha20-Poly1305 (IETF) everywhere else.
/// Both take a 32-byte key and a 12-byte nonce and append a 16-byte tag.
public enum AEADAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    case aes256gcm = "aes-256-gcm"
    case chacha20poly1305 = "chacha20-poly1305"

    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    public var description: String { rawValue }

    /// Whether this CPU runs libsodium's AES-256-GCM.
    public static var hardwareAESAvailable: Bool {
        Sodium.ensure()
        return crypto_aead_aes256gcm_is_available() == 1
    }

    /// What this node offers. `PILOT_AEAD=chacha20-poly1305` forces the
    /// fallback (for tests and for CPUs with slow AES).
    public static func localPreference(
        hardwareAES: Bool = hardwareAESAvailable, environment: [String: String] = [:]
    ) -> AEADAlgorithm {
        if environment["PILOT_AEAD"] == AEADAlgorithm.chacha20poly1305.rawValue { return .chacha20poly1305 }
        return hardwareAES ? .aes256gcm : .chacha20poly1305
    }

    /// AES-256-GCM only when both ends prefer it; otherwise ChaCha20-Poly1305.
    public static func negotiate(local: AEADAlgorithm, peer: AEADAlgorithm) -> AEADAlgorithm {
        local == .aes256gcm && peer == .aes256gcm ? .aes256gcm : .chacha20poly1305
    }
}

/// A symmetric key bound to one AEAD algorithm.
public struct AEADKey: Sendable {
    public let algorithm: AEADAlgorithm
    private let secret: SecretBytes
    /// AES-256-GCM's expanded key and GHASH powers, computed once
    /// (libsodium's one-shot calls redo them for every message); as
    /// secret as the key, wiped with it.
    private let aesState: SecretBytes?

    public init(_ algorithm: AEADAlgorithm, bytes: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        try checkLength(bytes, AEADAlgorithm.keyByteCount, "an AEAD key")
        if algorithm == .aes256gcm && !AEADAlgorithm.hardwareAESAvailable { throw .algorithmUnavailable(algorithm) }
        self.algorithm = algorithm
        secret = SecretBytes(bytes)
        aesState = algorithm != .aes256gcm ? nil : SecretBytes(count: crypto_aead_aes256gcm_statebytes()) { state in
            _ = crypto_aead_aes256gcm_beforenm(UnsafeMutableRawPointer(state).assumingMemoryBound(to: crypto_aead_aes256gcm_state.self), bytes)
        }
    }

    public static func random(_ algorithm: AEADAlgorithm) throws(CryptoError) -> AEADKey {
        try AEADKey(algorithm, bytes: SecureRandom.bytes(AEADAlgorithm.keyByteCount))
    }

    /// Ciphertext followed by the tag. The caller owns nonce uniqueness
    /// (the wire layer uses counters).
    public func seal(_ plaintext: [UInt8], nonce: [UInt8], additionalData: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        try checkLength(nonce, AEADAlgorithm.nonceByteCount, "an AEAD nonce")
        guard plaintext.count <= Int(UInt32.max) else { throw .messageTooLong }
        var out = [UInt8](repeating: 0, count: plaintext.count + AEADAlgorithm.tagByteCount)
        var written: UInt64 = 0
        if let aesState {
            aesState.withUnsafeBytes { state in
                _ = crypto_aead_aes256gcm_encrypt_afternm(&out, &written, plaintext, UInt64(plaintext.count),
                                                          additionalData, UInt64(additionalData.count), nil, nonce, Self.state(state))
            }
        } else {
            secret.withUnsafeBytes { key in
                _ = crypto_aead_chacha20poly1305_ietf_encrypt(&out, &written, plaintext, UInt64(plaintext.count),
                                                              additionalData, UInt64(additionalData.count), nil, nonce, key)
            }
        }
        return out
    }

    /// The plaintext, or `authenticationFailed` if any bit of ciphertext,
    /// tag, nonce or additional data differs from what was sealed.
    public func open(_ sealed: [UInt8], nonce: [UInt8], additionalData: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        try checkLength(nonce, AEADAlgorithm.nonceByteCount, "an AEAD nonce")
        guard sealed.count >= AEADAlgorithm.tagByteCount else { throw .authenticationFailed }
        var out = [UInt8](repeating: 0, count: sealed.count - AEADAlgorithm.tagByteCount)
        var written: UInt64 = 0
        let status = if let aesState {
            aesState.withUnsafeBytes { state in
                crypto_aead_aes256gcm_decrypt_afternm(&out, &written, nil, sealed, UInt64(sealed.count),
                                                      additionalData, UInt64(additionalData.count), nonce, Self.state(state))
            }
        } else {
            secret.withUnsafeBytes { key in
                crypto_aead_chacha20poly1305_ietf_decrypt(&out, &written, nil, sealed, UInt64(sealed.count),
                                                          additionalData, UInt64(additionalData.count), nonce, key)
            }
        }
        guard status == 0 else { throw .authenticationFailed }
        return out
    }

    private static func state(_ bytes: UnsafePointer<UInt8>) -> UnsafePointer<crypto_aead_aes256gcm_state> {
        UnsafeRawPointer(bytes).assumingMemoryBound(to: crypto_aead_aes256gcm_state.self)
    }
}
