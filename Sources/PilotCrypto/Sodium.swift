internal import CSodium

/// libsodium is initialised exactly once per process. `initialize()` gives
/// callers (the CLI) a clean error; every primitive also calls `ensure()`,
/// so an instance of any key type proves the library is ready.
public enum Sodium {
    private static let status: Int32 = sodium_init()

    public static func initialize() throws(CryptoError) {
        guard status >= 0 else { throw .libraryUnavailable }
    }

    static func ensure() {
        // sodium_init fails only when the kernel gives no randomness; nothing
        // can run securely then, and initialize() already reported it.
        precondition(status >= 0, "libsodium could not be initialised (no system randomness)")
    }

    public static var version: String { String(cString: sodium_version_string()) }
}

public enum CryptoError: Error, Equatable, CustomStringConvertible {
    case libraryUnavailable
    case invalidLength(what: String, expected: Int, actual: Int)
    case invalidEncoding(what: String, encoding: String)
    case invalidPublicKey
    case badSignature
    case weakSharedSecret
    case authenticationFailed
    case algorithmUnavailable(AEADAlgorithm)
    case messageTooLong

    public var description: String {
        switch self {
        case .libraryUnavailable: "libsodium could not be initialised (no system randomness available)"
        case let .invalidLength(what, expected, actual): "\(what) must be \(expected) bytes, got \(actual)"
        case let .invalidEncoding(what, encoding): "\(what) is not valid \(encoding)"
        case .invalidPublicKey: "the public key is not a valid Ed25519 point"
        case .badSignature: "signature verification failed"
        case .weakSharedSecret: "key agreement produced a weak (all-zero) shared secret"
        case .authenticationFailed: "decryption failed: the message was altered or the key is wrong"
        case .algorithmUnavailable(let algorithm): "\(algorithm.rawValue) is not available on this CPU"
        case .messageTooLong: "message is too long to encrypt"
        }
    }
}

@inline(__always)
func checkLength(_ bytes: [UInt8], _ expected: Int, _ what: String) throws(CryptoError) {
    guard bytes.count == expected else { throw .invalidLength(what: what, expected: expected, actual: bytes.count) }
}
