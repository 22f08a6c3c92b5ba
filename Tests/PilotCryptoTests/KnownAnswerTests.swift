import PilotCrypto
import Testing

private func hex(_ text: String) -> [UInt8] { try! Hex.decode(text) }

/// Published test vectors, so a wrong binding (argument order, key form,
/// nonce size) cannot pass by agreeing with itself.
@Suite struct KnownAnswerTests {
    /// RFC 8032 section 7.1, tests 1 to 3.
    @Test(arguments: [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ])
    func ed25519MatchesRFC8032(secret: String, publicKey: String, message: String, signature: String) throws {
        let key = try SigningKey(seed: hex(secret))
        #expect(Hex.encode(key.publicKey.bytes) == publicKey)
        #expect(Hex.encode(key.sign(hex(message))) == signature)
        try key.publicKey.verify(hex(signature), for: hex(message))
    }

    /// RFC 7748 section 6.1.
    @Test func x25519MatchesRFC7748() throws {
        let alice = try X25519PrivateKey(bytes: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try X25519PrivateKey(bytes: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(Hex.encode(alice.publicKey.bytes) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(Hex.encode(bob.publicKey.bytes) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(Hex.encode(try alice.sharedSecret(with: bob.publicKey)) == shared)
        #expect(Hex.encode(try bob.sharedSecret(with: alice.publicKey)) == shared)
    }

    /// The GCM specification (McGrew and Viega), test case 16: AES-256, 96-bit IV, with AAD.
    @Test func aes256gcmMatchesTheGCMSpecification() throws {
        try #require(AEADAlgorithm.hardwareAESAvailable, "this CPU lacks AES-NI; libsodium offers no AES-256-GCM here")
        let key = try AEADKey(.aes256gcm, bytes: hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"))
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let nonce = hex("cafebabefacedbaddecaf888")
        let sealed = try key.seal(plaintext, nonce: nonce, additionalData: aad)
        #expect(Hex.encode(sealed) == "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                + "76fc6ece0f4e1768cddf8853bb2d551b")
        #expect(try key.open(sealed, nonce: nonce, additionalData: aad) == plaintext)
    }

    /// RFC 8439 section 2.8.2, through the fallback a CPU without AES-NI gets.
    @Test func chacha20poly1305MatchesRFC8439WithTheFallbackForced() throws {
        let algorithm = AEADAlgorithm.localPreference(hardwareAES: false)
        #expect(algorithm == .chacha20poly1305)
        let key = try AEADKey(algorithm, bytes: Array(0x80...0x9F))
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let nonce = hex("070000004041424344454647")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let sealed = try key.seal(plaintext, nonce: nonce, additionalData: aad)
        #expect(Hex.encode(sealed) ==
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
            + "1ae10b594f09e26a7e902ecbd0600691")
        #expect(try key.open(sealed, nonce: nonce, additionalData: aad) == plaintext)
    }

    @Test func theFallbackIsChosenWhenEitherSideLacksAESOrItIsForced() {
        #expect(AEADAlgorithm.localPreference(hardwareAES: true) == .aes256gcm)
        #expect(AEADAlgorithm.localPreference(hardwareAES: true, environment: ["PILOT_AEAD": "chacha20-poly1305"]) == .chacha20poly1305)
        #expect(AEADAlgorithm.negotiate(local: .aes256gcm, peer: .aes256gcm) == .aes256gcm)
        #expect(AEADAlgorithm.negotiate(local: .aes256gcm, peer: .chacha20poly1305) == .chacha20poly1305)
        #expect(AEADAlgorithm.negotiate(local: .chacha20poly1305, peer: .aes256gcm) == .chacha20poly1305)
    }
}
