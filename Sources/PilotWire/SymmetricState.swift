internal import PilotCrypto

/// The Noise framework's symmetric state: a running transcript hash `h`,
/// a chaining key `ck`, and the handshake cipher keyed from it. Handshake
/// messages always use ChaCha20-Poly1305, so every CPU can complete a
/// handshake; the transport AEAD is negotiated inside it.
struct SymmetricState {
    private(set) var h: [UInt8]
    private var ck: [UInt8]
    private var key: AEADKey?
    private var nonce: UInt64 = 0

    init(protocolName: String) {
        h = SHA256.hash(Array(protocolName.utf8))
        ck = h
    }

    mutating func mixHash(_ data: [UInt8]) {
        h = SHA256.hash(h + data)
    }

    mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let outputs = HKDF.derive(chainingKey: ck, inputKeyMaterial: inputKeyMaterial, outputs: 2)
        ck = outputs[0]
        key = try! AEADKey(.chacha20poly1305, bytes: outputs[1]) // 32 bytes, and ChaCha20 needs no CPU feature
        nonce = 0
    }

    /// Before any key exists only an empty payload may pass: nothing is
    /// ever sent in plaintext.
    mutating func encryptAndHash(_ plaintext: [UInt8]) -> [UInt8] {
        guard let key else {
            precondition(plaintext.isEmpty, "programming error: plaintext before a handshake key exists")
            mixHash(plaintext)
            return plaintext
        }
        let ciphertext = try! key.seal(plaintext, nonce: Self.nonceBytes(nonce), additionalData: h) // nonce is 12 bytes
        nonce += 1
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(WireError) -> [UInt8] {
        guard let key else {
            guard ciphertext.isEmpty else { throw .malformed("unencrypted handshake payload") }
            mixHash(ciphertext)
            return ciphertext
        }
        let plaintext: [UInt8]
        do { plaintext = try key.open(ciphertext, nonce: Self.nonceBytes(nonce), additionalData: h) } catch {
            throw .authenticationFailed
        }
        nonce += 1
        mixHash(ciphertext)
        return plaintext
    }

    /// Initiator-to-responder and responder-to-initiator transport keys.
    func split() -> (initiatorToResponder: [UInt8], responderToInitiator: [UInt8]) {
        let outputs = HKDF.derive(chainingKey: ck, inputKeyMaterial: [], outputs: 2)
        return (outputs[0], outputs[1])
    }

    static func nonceBytes(_ counter: UInt64) -> [UInt8] { [0, 0, 0, 0] + counter.bigEndianBytes }
}
