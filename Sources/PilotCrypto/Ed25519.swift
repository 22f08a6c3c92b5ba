internal import CSodium

/// An Ed25519 public key: a node's identity as the fleet knows it.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        try checkLength(bytes, Self.byteCount, "an Ed25519 public key")
        // Refuse keys that are not points on the curve now rather than at first use.
        var curve = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
        guard crypto_sign_ed25519_pk_to_curve25519(&curve, bytes) == 0 else { throw .invalidPublicKey }
        self.bytes = bytes
    }

    public init(base64: String) throws(CryptoError) {
        try self.init(bytes: Base64.decode(base64, what: "the public key"))
    }

    public var base64: String { Base64.encode(bytes) }
    public var description: String { base64 }

    /// Keys are looked up per datagram and per stream message: hash the
    /// 32 bytes as four words rather than byte by byte.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { raw in
            for offset in stride(from: 0, to: raw.count - 7, by: 8) { hasher.combine(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        }
    }

    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.bytes == rhs.bytes }

    /// `SHA256:` and the unpadded base64 digest, as OpenSSH prints host keys.
    public var fingerprint: String {
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        crypto_hash_sha256(&digest, bytes, UInt64(bytes.count))
        return "SHA256:" + Base64.encode(digest).replacing("=", with: "")
    }

    public func verify(_ signature: [UInt8], for message: [UInt8]) throws(CryptoError) {
        try checkLength(signature, Int(crypto_sign_BYTES), "an Ed25519 signature")
        guard crypto_sign_verify_detached(signature, message, UInt64(message.count), bytes) == 0 else { throw .badSignature }
    }

    /// The X25519 form of this key, for key agreement with its owner.
    public func keyAgreementKey() throws(CryptoError) -> X25519PublicKey {
        var curve = [UInt8](repeating: 0, count: X25519PublicKey.byteCount)
        guard crypto_sign_ed25519_pk_to_curve25519(&curve, bytes) == 0 else { throw .invalidPublicKey }
        return try X25519PublicKey(bytes: curve)
    }
}

/// An Ed25519 signing key. The 32-byte seed is the secret that goes to disk.
public struct SigningKey: Sendable {
    public static let seedByteCount = 32
    private let secret: SecretBytes // libsodium's 64-byte form: seed || public key
    public let publicKey: PublicKey

    public static func generate() -> SigningKey {
        // A fresh seed from the CSPRNG is always valid.
        try! SigningKey(seed: SecureRandom.bytes(seedByteCount))
    }

    public init(seed: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        try checkLength(seed, Self.seedByteCount, "an Ed25519 seed")
        var publicBytes = [UInt8](repeating: 0, count: PublicKey.byteCount)
        secret = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { secretPointer in
            _ = crypto_sign_seed_keypair(&publicBytes, secretPointer, seed)
        }
        publicKey = try PublicKey(bytes: publicBytes)
    }

    public var seed: [UInt8] { Array(secret.bytes.prefix(Self.seedByteCount)) }

    public func sign(_ message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        secret.withUnsafeBytes { key in
            _ = crypto_sign_detached(&signature, nil, message, UInt64(message.count), key)
        }
        return signature
    }

    /// The X25519 form of this key, so a static identity can take part in
    /// a Noise-style handshake.
    public func keyAgreementKey() -> X25519PrivateKey {
        let scalar = SecretBytes(count: X25519PrivateKey.byteCount) { out in
            secret.withUnsafeBytes { key in _ = crypto_sign_ed25519_sk_to_curve25519(out, key) }
        }
        return X25519PrivateKey(secret: scalar)
    }
}
