internal import PilotSQLite
internal import PilotCrypto

/// What `pilot version` reports. Everything here is known at compile time
/// or read from the linked libraries, so it is true of this very binary.
enum BuildInfo {
    static let version = "0.1.0"

    static var configuration: String {
        #if DEBUG
        "debug"
        #else
        "release"
        #endif
    }

    static var platform: String {
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "aarch64"
        #else
        let arch = "unknown-arch"
        #endif
        #if os(Linux)
        return "\(arch)-linux"
        #else
        return "\(arch)-other"
        #endif
    }

    static var swiftVersion: String {
        #if compiler(>=6.4)
        "6.4 or later"
        #elseif compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6.1"
        #endif
    }

    static var sqliteVersion: String { SQLiteConnection.libraryVersion }

    static var lines: [(String, String)] {
        let aead = AEADAlgorithm.localPreference()
        let aes = AEADAlgorithm.hardwareAESAvailable ? "AES-NI present" : "no AES-NI"
        return [
            ("build", "\(configuration), \(platform)"),
            ("swift", swiftVersion),
            ("libsodium", "\(Sodium.version) (preferred AEAD \(aead), \(aes))"),
            ("sqlite", sqliteVersion),
        ]
    }
}
