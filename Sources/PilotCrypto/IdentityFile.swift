#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
internal import PilotCore

/// A node's identity on disk: the Ed25519 seed in a small text file that
/// only its owner may read (mode 0600).
///
///     # pilot node identity (Ed25519). Keep this file private.
///     ed25519-seed BASE64
///     ed25519-public BASE64
///
/// The public line lets `load` notice a damaged seed instead of quietly
/// becoming another node.
public enum IdentityFile {
    static let maxBytes = 4096

    public static func save(_ key: SigningKey, to path: String, overwrite: Bool = false) throws(IdentityFileError) {
        if !overwrite, LocalFile.exists(path) {
            throw IdentityFileError(path: path, reason: "already exists; refusing to replace an identity")
        }
        let text = """
            # pilot node identity (Ed25519). Keep this file private: it is this node.
            ed25519-seed \(Base64.encode(key.seed))
            ed25519-public \(key.publicKey.base64)

            """
        do {
            try LocalFile.writeAtomically(path, Array(text.utf8), mode: 0o600)
        } catch {
            throw IdentityFileError(path: path, reason: "could not be written: \(error)")
        }
    }

    public static func load(from path: String) throws(IdentityFileError) -> SigningKey {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw IdentityFileError(path: path, reason: errno == ENOENT ? "does not exist (run 'pilot init' first)" : systemError())
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw IdentityFileError(path: path, reason: "is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw IdentityFileError(path: path, reason: "has mode \(octal(mode)), so others can read this node's secret key; run 'chmod 600 \(path)'")
        }
        guard info.st_size <= maxBytes else { throw IdentityFileError(path: path, reason: "is corrupt: larger than \(maxBytes) bytes") }
        let text: String
        do { text = try LocalFile.readText(path, maxBytes: maxBytes) } catch {
            throw IdentityFileError(path: path, reason: "is unreadable: \(error)")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws(IdentityFileError) -> SigningKey {
        var seed: [UInt8]?
        var publicKey: [UInt8]?
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let trimmed = line.split(separator: " ", omittingEmptySubsequences: true)
            if trimmed.isEmpty || trimmed[0].hasPrefix("#") { continue }
            guard trimmed.count == 2 else { throw IdentityFileError(path: path, reason: "is corrupt: line \(index + 1) is not 'NAME VALUE'") }
            do {
                switch trimmed[0] {
                case "ed25519-seed": seed = try Base64.decode(String(trimmed[1]), what: "the seed")
                case "ed25519-public": publicKey = try Base64.decode(String(trimmed[1]), what: "the public key")
                default: throw IdentityFileError(path: path, reason: "is corrupt: unknown entry '\(trimmed[0].prefix(40))' on line \(index + 1)")
                }
            } catch let error as IdentityFileError {
                throw error
            } catch {
                throw IdentityFileError(path: path, reason: "is corrupt: \(error)")
            }
        }
        guard let seed else { throw IdentityFileError(path: path, reason: "is corrupt: no ed25519-seed line") }
        let key: SigningKey
        do { key = try SigningKey(seed: seed) } catch { throw IdentityFileError(path: path, reason: "is corrupt: \(error)") }
        if let publicKey, publicKey != key.publicKey.bytes {
            throw IdentityFileError(path: path, reason: "is corrupt: the public key does not match the seed")
        }
        return key
    }

}

public struct IdentityFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "identity file \(path) \(reason)" }
}

func systemError(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

func octal(_ mode: mode_t) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
