import PilotCrypto
import Testing

@Suite struct HashingTests {
    @Test func sha256MatchesFIPS180() {
        #expect(Hex.encode(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// RFC 4231 test case 2.
    @Test func hmacSHA256MatchesRFC4231() {
        let mac = HMACSHA256.authenticate(Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8))
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    /// RFC 5869 test case 3 (empty salt and info), which is the Noise form of HKDF.
    @Test func hkdfMatchesRFC5869() {
        let outputs = HKDF.derive(chainingKey: [], inputKeyMaterial: Array(repeating: 0x0b, count: 22), outputs: 2)
        #expect(Hex.encode(Array(outputs.joined().prefix(42)))
                == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }
}
