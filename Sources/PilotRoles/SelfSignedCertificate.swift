internal import PilotCrypto

/// The HTTPS certificate `pilot init` makes for a node: X.509 v3, ECDSA
/// P-256 with SHA-256, for the node's hostname, `localhost` and 127.0.0.1,
/// a server's and never a CA's. Self-signed, so the file itself is what a
/// client trusts (`curl --cacert STATE/tls.crt`) and its fingerprint is what
/// a person pins. Building the bytes is pure; only the signature is not.
public struct SelfSignedCertificate: Sendable, Equatable {
    public var hostname: String
    /// Big-endian, positive; RFC 5280 allows up to 20 bytes.
    public var serial: [UInt8]
    public var notBefore: Int64
    public var notAfter: Int64
    /// The uncompressed P-256 point (65 bytes).
    public var publicKey: [UInt8]

    public init(hostname: String, serial: [UInt8], notBefore: Int64, notAfter: Int64, publicKey: [UInt8]) {
        (self.hostname, self.serial, self.notBefore, self.notAfter, self.publicKey) = (hostname, serial, notBefore, notAfter, publicKey)
    }

    /// The DNS names it is valid for, the hostname first.
    public var dnsNames: [String] { hostname.lowercased() == "localhost" ? [hostname] : [hostname, "localhost"] }
    public static let ipAddresses: [[UInt8]] = [[127, 0, 0, 1]]

    enum OID {
        static let ecdsaWithSHA256 = "1.2.840.10045.4.3.2"
        static let ecPublicKey = "1.2.840.10045.2.1"
        static let prime256v1 = "1.2.840.10045.3.1.7"
        static let commonName = "2.5.4.3"
        static let basicConstraints = "2.5.29.19"
        static let keyUsage = "2.5.29.15"
        static let extendedKeyUsage = "2.5.29.37"
        static let subjectAltName = "2.5.29.17"
        static let serverAuth = "1.3.6.1.5.5.7.3.1"
    }

    static let signatureAlgorithm = DER.sequence([DER.objectIdentifier(OID.ecdsaWithSHA256)])
    static let p256Algorithm = DER.sequence([DER.objectIdentifier(OID.ecPublicKey), DER.objectIdentifier(OID.prime256v1)])

    /// The TBSCertificate: everything the signature covers.
    public var toBeSigned: [UInt8] {
        let name = DER.sequence([DER.set([DER.sequence([DER.objectIdentifier(OID.commonName), DER.utf8String(hostname)])])])
        let altNames = dnsNames.map { DER.implicit(2, Array($0.utf8)) } + Self.ipAddresses.map { DER.implicit(7, $0) }
        func extensionField(_ oid: String, critical: Bool, _ value: [UInt8]) -> [UInt8] {
            DER.sequence([DER.objectIdentifier(oid)] + (critical ? [DER.true] : []) + [DER.octetString(value)])
        }
        let extensions = [
            extensionField(OID.basicConstraints, critical: true, DER.sequence([])),        // cA FALSE (the default, so empty)
            extensionField(OID.keyUsage, critical: true, DER.bitString([0x80], unusedBits: 7)), // digitalSignature
            extensionField(OID.extendedKeyUsage, critical: false, DER.sequence([DER.objectIdentifier(OID.serverAuth)])),
            extensionField(OID.subjectAltName, critical: false, DER.sequence(altNames)),
        ]
        return DER.sequence([
            DER.explicit(0, DER.integer(2)), // v3
            DER.integer(unsigned: serial),
            Self.signatureAlgorithm,
            name,
            DER.sequence([DER.time(notBefore), DER.time(notAfter)]),
            name,
            DER.sequence([Self.p256Algorithm, DER.bitString(publicKey)]),
            DER.explicit(3, DER.sequence(extensions)),
        ])
    }

    /// The whole certificate, given the ECDSA signature (DER) of the SHA-256
    /// of `toBeSigned`.
    public func certificate(signature: [UInt8]) -> [UInt8] {
        DER.sequence([toBeSigned, Self.signatureAlgorithm, DER.bitString(signature)])
    }

    /// The key as PKCS #8 (RFC 5208) around SEC 1's ECPrivateKey (RFC 5915).
    public static func privateKeyInfo(scalar: [UInt8], publicKey: [UInt8]) -> [UInt8] {
        let ecPrivateKey = DER.sequence([DER.integer(1), DER.octetString(scalar), DER.explicit(1, DER.bitString(publicKey))])
        return DER.sequence([DER.integer(0), p256Algorithm, DER.octetString(ecPrivateKey)])
    }

    /// `AB:CD:…`: the SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` prints it.
    public static func fingerprint(_ der: [UInt8]) -> String {
        Hex.encode(SHA256.hash(der)).uppercased().enumerated().reduce(into: "") { text, pair in
            if pair.offset > 0, pair.offset % 2 == 0 { text.append(":") }
            text.append(pair.element)
        }
    }

    /// A new key and the certificate it signs, valid from an hour ago (clocks
    /// that lag a little) for ten years, as PEM texts.
    static func make(hostname: String, now: Int64) throws(P256KeyError) -> (certificate: String, key: String, fingerprint: String) {
        let key = try P256Key()
        let publicKey = key.publicKey
        let request = SelfSignedCertificate(hostname: hostname, serial: SecureRandom.bytes(16), notBefore: now - 3600,
                                            notAfter: now + 3650 * 86_400, publicKey: publicKey)
        let der = request.certificate(signature: try key.sign(digest: SHA256.hash(request.toBeSigned)))
        return (DER.pem("CERTIFICATE", der), DER.pem("PRIVATE KEY", privateKeyInfo(scalar: key.privateScalar, publicKey: publicKey)), fingerprint(der))
    }
}
