internal import CSodium

public struct X25519PublicKey: Hashable, Sendable {
    public static let byteCount = Int(crypto_scalarmult_curve25519_BYTES)
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        try checkLength(bytes, Self.byteCount, "an X25519 public key")
        self.bytes = bytes
    }
}

/// An X25519 private scalar: ephemeral for each handshake, or derived from
/// a node's Ed25519 identity.
public struct X25519PrivateKey: Sendable {
    public static let byteCount = Int(crypto_scalarmult_curve25519_SCALARBYTES)
    private let secret: SecretBytes
    public let publicKey: X25519PublicKey

    public static func generate() -> X25519PrivateKey {
        X25519PrivateKey(secret: SecretBytes(SecureRandom.bytes(byteCount)))
    }

    public init(bytes: [UInt8]) throws(CryptoError) {
        Sodium.ensure()
        try checkLength(bytes, Self.byteCount, "an X25519 private key")
        self.init(secret: SecretBytes(bytes))
    }

    init(secret: SecretBytes) {
        Sodium.ensure()
        self.secret = secret
        var publicBytes = [UInt8](repeating: 0, count: X25519PublicKey.byteCount)
        secret.withUnsafeBytes { _ = crypto_scalarmult_curve25519_base(&publicBytes, $0) }
        publicKey = try! X25519PublicKey(bytes: publicBytes) // length is fixed above
    }

    /// The Diffie-Hellman shared secret. Refuses low-order peer points,
    /// whose result would be all zeros and known to anyone.
    public func sharedSecret(with peer: X25519PublicKey) throws(CryptoError) -> [UInt8] {
        var shared = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
        let status = secret.withUnsafeBytes { crypto_scalarmult_curve25519(&shared, $0, peer.bytes) }
        guard status == 0 else { throw .weakSharedSecret }
        return shared
    }
}
