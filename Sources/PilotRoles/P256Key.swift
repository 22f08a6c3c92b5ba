internal import CNIOBoringSSL

/// An ECDSA P-256 key through the BoringSSL that NIOSSL already links, so
/// the binary holds no second copy of it: made, exported, used to sign.
/// Only `pilot init` makes one (the HTTPS certificate), once per node.
final class P256Key {
    private let key: OpaquePointer

    /// A new key from BoringSSL's CSPRNG.
    init() throws(P256KeyError) {
        guard let key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1) else { throw P256KeyError("cannot make a P-256 key") }
        guard EC_KEY_generate_key(key) == 1 else {
            EC_KEY_free(key)
            throw P256KeyError("cannot make a P-256 key")
        }
        self.key = key
    }

    deinit { EC_KEY_free(key) }

    /// The uncompressed point, 0x04 ‖ X ‖ Y (65 bytes).
    var publicKey: [UInt8] {
        var point = [UInt8](repeating: 0, count: 65)
        let written = EC_POINT_point2oct(EC_KEY_get0_group(key), EC_KEY_get0_public_key(key),
                                                       POINT_CONVERSION_UNCOMPRESSED, &point, point.count, nil)
        precondition(written == point.count, "a P-256 point is 65 bytes uncompressed")
        return point
    }

    /// The private scalar, 32 big-endian bytes (for the key file only).
    var privateScalar: [UInt8] {
        var scalar = [UInt8](repeating: 0, count: 32)
        precondition(BN_bn2bin_padded(&scalar, scalar.count, EC_KEY_get0_private_key(key)) == 1)
        return scalar
    }

    /// ECDSA over a SHA-256 digest: the DER Ecdsa-Sig-Value that X.509 wants.
    func sign(digest: [UInt8]) throws(P256KeyError) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: ECDSA_size(key))
        var length: UInt32 = 0
        guard ECDSA_sign(0, digest, digest.count, &signature, &length, key) == 1 else { throw P256KeyError("cannot sign with the P-256 key") }
        return Array(signature.prefix(Int(length)))
    }
}

struct P256KeyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
