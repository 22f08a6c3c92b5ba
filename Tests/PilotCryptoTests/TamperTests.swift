import PilotCrypto
import Testing

@Suite struct TamperTests {
    static var algorithms: [AEADAlgorithm] {
        AEADAlgorithm.hardwareAESAvailable ? [.aes256gcm, .chacha20poly1305] : [.chacha20poly1305]
    }

    /// Flipping any single bit of ciphertext, tag, nonce or additional data is refused.
    @Test(arguments: algorithms)
    func everySingleBitFlipIsRefused(algorithm: AEADAlgorithm) throws {
        let key = try AEADKey.random(algorithm)
        let nonce = SecureRandom.bytes(12)
        let aad = Array("frame header".utf8)
        let sealed = try key.seal(Array("cpu_pct 42.1".utf8), nonce: nonce, additionalData: aad)
        #expect(sealed.count == 12 + AEADAlgorithm.tagByteCount)

        for bit in 0..<(sealed.count * 8) {
            var tampered = sealed
            tampered[bit / 8] ^= 1 << (bit % 8)
            #expect(throws: CryptoError.authenticationFailed) { try key.open(tampered, nonce: nonce, additionalData: aad) }
        }
        for bit in 0..<(nonce.count * 8) {
            var tampered = nonce
            tampered[bit / 8] ^= 1 << (bit % 8)
            #expect(throws: CryptoError.authenticationFailed) { try key.open(sealed, nonce: tampered, additionalData: aad) }
        }
        var otherAAD = aad
        otherAAD[0] ^= 0x01
        #expect(throws: CryptoError.authenticationFailed) { try key.open(sealed, nonce: nonce, additionalData: otherAAD) }
        #expect(throws: CryptoError.authenticationFailed) { try key.open(Array(sealed.dropLast()), nonce: nonce, additionalData: aad) }
        #expect(throws: CryptoError.authenticationFailed) { try key.open([], nonce: nonce) }
        #expect(try key.open(sealed, nonce: nonce, additionalData: aad) == Array("cpu_pct 42.1".utf8))
    }

    @Test func aKeyOfTheOtherAlgorithmCannotOpen() throws {
        guard AEADAlgorithm.hardwareAESAvailable else { return }
        let bytes = SecureRandom.bytes(32)
        let nonce = SecureRandom.bytes(12)
        let sealed = try AEADKey(.aes256gcm, bytes: bytes).seal([1, 2, 3], nonce: nonce)
        #expect(throws: CryptoError.authenticationFailed) { try AEADKey(.chacha20poly1305, bytes: bytes).open(sealed, nonce: nonce) }
    }

    @Test func signaturesRefuseAnyChange() throws {
        let key = SigningKey.generate()
        let message = Array("register web-01 1764100000 nonce".utf8)
        let signature = key.sign(message)
        try key.publicKey.verify(signature, for: message)
        var badSignature = signature
        badSignature[10] ^= 0x04
        #expect(throws: CryptoError.badSignature) { try key.publicKey.verify(badSignature, for: message) }
        var badMessage = message
        badMessage[0] ^= 0x01
        #expect(throws: CryptoError.badSignature) { try key.publicKey.verify(signature, for: badMessage) }
        #expect(throws: CryptoError.badSignature) { try SigningKey.generate().publicKey.verify(signature, for: message) }
        #expect(throws: CryptoError.invalidLength(what: "an Ed25519 signature", expected: 64, actual: 63)) {
            try key.publicKey.verify(Array(signature.dropLast()), for: message)
        }
    }

    @Test func wrongSizesAreTypedErrors() {
        #expect(throws: CryptoError.invalidLength(what: "an AEAD key", expected: 32, actual: 16)) { try AEADKey(.chacha20poly1305, bytes: Array(repeating: 0, count: 16)) }
        #expect(throws: CryptoError.invalidLength(what: "an AEAD nonce", expected: 12, actual: 8)) {
            try AEADKey.random(.chacha20poly1305).seal([1], nonce: Array(repeating: 0, count: 8))
        }
        #expect(throws: CryptoError.invalidLength(what: "an Ed25519 seed", expected: 32, actual: 31)) { try SigningKey(seed: Array(repeating: 0, count: 31)) }
        #expect(throws: CryptoError.invalidLength(what: "an Ed25519 public key", expected: 32, actual: 0)) { try PublicKey(bytes: []) }
    }
}

@Suite struct KeyAgreementTests {
    @Test func ephemeralKeysAgree() throws {
        let a = X25519PrivateKey.generate(), b = X25519PrivateKey.generate()
        #expect(try a.sharedSecret(with: b.publicKey) == b.sharedSecret(with: a.publicKey))
        #expect(a.publicKey != b.publicKey)
    }

    @Test func identityKeysAgreeThroughTheirX25519Forms() throws {
        let alice = SigningKey.generate(), bob = SigningKey.generate()
        let fromAlice = try alice.keyAgreementKey().sharedSecret(with: bob.publicKey.keyAgreementKey())
        let fromBob = try bob.keyAgreementKey().sharedSecret(with: alice.publicKey.keyAgreementKey())
        #expect(fromAlice == fromBob)
        #expect(alice.keyAgreementKey().publicKey == (try alice.publicKey.keyAgreementKey()))
    }

    @Test func lowOrderPointsAreRefused() throws {
        let zero = try X25519PublicKey(bytes: Array(repeating: 0, count: 32))
        #expect(throws: CryptoError.weakSharedSecret) { try X25519PrivateKey.generate().sharedSecret(with: zero) }
    }

    @Test func randomBytesAndConstantTimeCompare() {
        let a = SecureRandom.bytes(32), b = SecureRandom.bytes(32)
        #expect(a.count == 32 && a != b)
        #expect(ConstantTime.equal(a, a))
        #expect(!ConstantTime.equal(a, b))
        #expect(!ConstantTime.equal(a, Array(a.dropLast())))
        #expect(ConstantTime.equal([], []))
    }

    @Test func base64RoundTripsAndRefusesJunk() throws {
        let bytes = SecureRandom.bytes(33)
        #expect(try Base64.decode(Base64.encode(bytes)) == bytes)
        #expect(throws: CryptoError.invalidEncoding(what: "value", encoding: "base64")) { try Base64.decode("not base64!") }
        #expect(throws: CryptoError.invalidEncoding(what: "value", encoding: "base64")) { try Base64.decode("") }
    }

    @Test func publicKeysRoundTripThroughBase64AndHaveFingerprints() throws {
        let key = SigningKey.generate()
        #expect(try PublicKey(base64: key.publicKey.base64) == key.publicKey)
        #expect(key.publicKey.fingerprint.hasPrefix("SHA256:"))
        #expect(key.publicKey.fingerprint.count == 7 + 43)
    }
}
