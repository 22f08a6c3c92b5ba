import Glibc
@testable import PilotCLI
import PilotCore
import PilotCrypto
import PilotRoles
import Testing

@Suite struct InitCommandTests {
    let directory: String

    init() throws {
        var template = Array("/tmp/pilot-init-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil)
        directory = String(cString: made!) + "/state"
    }

    @Test func createsIdentityAndConfigAndPrintsThePublicKey() async throws {
        let result = await run(["pilot", "init", "--hostname", "web-01", "--registry", "rv.example:9000",
                                "--beacon", "[::1]:9001", "--state-dir", directory])
        #expect(result.status == 0, "\(result.err)")
        let key = try IdentityFile.load(from: directory + "/identity.key")
        #expect(result.out.contains("public key: \(key.publicKey.base64)\n"))
        let config = try ConfigFile(parsing: LocalFile.readText(directory + "/config", maxBytes: 4096), path: "config")
        #expect(config.arguments == ["--hostname", "web-01", "--registry", "rv.example:9000", "--beacon", "[::1]:9001"])
        var info = stat()
        #expect(stat(directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(stat(directory + "/config", &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test func runningAgainKeepsTheIdentityAndUpdatesTheConfig() async throws {
        _ = await run(["pilot", "init", "--hostname", "web-01", "--registry", "rv:9000", "--state-dir", directory])
        let first = try IdentityFile.load(from: directory + "/identity.key")
        let again = await run(["pilot", "init", "--beacon", "bc:9001", "--state-dir", directory])
        #expect(again.status == 0)
        #expect(again.out.hasPrefix("Updated pilot node 'web-01'"))
        #expect(try IdentityFile.load(from: directory + "/identity.key").publicKey == first.publicKey)
        let config = try LocalFile.readText(directory + "/config", maxBytes: 4096)
        #expect(config.contains("--hostname web-01\n--registry rv:9000\n--beacon bc:9001\n"))
    }

    @Test func refusesACorruptIdentityWithoutTouchingIt() async throws {
        try LocalFile.makeDirectory(directory, mode: 0o700)
        try LocalFile.writeAtomically(directory + "/identity.key", Array("ed25519-seed AAAA\n".utf8), mode: 0o600)
        let result = await run(["pilot", "init", "--hostname", "a", "--state-dir", directory])
        #expect(result.status == 1)
        #expect(result.err.hasPrefix("pilot init: identity file \(directory)/identity.key is corrupt"))
        #expect(try LocalFile.readText(directory + "/identity.key", maxBytes: 100) == "ed25519-seed AAAA\n")
        #expect(!LocalFile.exists(directory + "/config"))
    }

    @Test func refusesABadConfigLineNamingFileAndLine() async throws {
        try LocalFile.makeDirectory(directory, mode: 0o700)
        try LocalFile.writeAtomically(directory + "/config", Array("--hostname a\nregistry rv:9000\n".utf8), mode: 0o600)
        let result = await run(["pilot", "init", "--state-dir", directory])
        #expect(result.status == 1)
        #expect(result.err == "pilot init: \(directory)/config:2: expected a flag starting with '--', found 'registry rv:9000'\n")
    }

    @Test func refusesAStateDirectoryThatIsAFile() async throws {
        try LocalFile.makeDirectory(directory, mode: 0o700)
        try LocalFile.writeAtomically(directory + "/file", [1], mode: 0o600)
        let result = await run(["pilot", "init", "--hostname", "a", "--state-dir", directory + "/file"])
        #expect(result.status == 1)
        #expect(result.err == "pilot init: state directory: \(directory)/file exists and is not a directory\n")
        let nested = await run(["pilot", "init", "--hostname", "a", "--state-dir", directory + "/file/sub"])
        #expect(nested.err == "pilot init: state directory: \(directory)/file exists and is not a directory\n")
    }

    @Test func makesAnHTTPSCertificatePrintsItsFingerprintAndKeepsIt() async throws {
        let first = await run(["pilot", "init", "--hostname", "web-01", "--state-dir", directory])
        let fingerprint = try SelfSignedCertificate.fingerprint(ofFile: directory + "/tls.crt")
        #expect(first.out.contains("  tls sha256:  \(fingerprint)\n"), "\(first.out)")
        var info = stat()
        #expect(stat(directory + "/tls.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let again = await run(["pilot", "init", "--state-dir", directory])
        #expect(again.out.contains("(existing)\n  tls sha256:  \(fingerprint)\n"), "\(again.out)")
    }

    @Test func beyondLoopbackARoleWithoutTLSFlagsTakesInitsPair() async throws {
        let wide = Endpoint(host: "0.0.0.0", port: 9190), loopback = Endpoint(host: "127.0.0.1", port: 9190)
        let flags = try HTTPFlags.parse(["--http-token", "@/dev/null"])
        #expect(throws: (any Error).self) { try flags.check(wide, stateDirectory: directory) }
        #expect(flags.tlsFiles(for: wide, stateDirectory: directory) == nil)
        _ = await run(["pilot", "init", "--hostname", "web-01", "--state-dir", directory])
        try flags.check(wide, stateDirectory: directory)
        #expect(flags.tlsFiles(for: wide, stateDirectory: directory)?.certificate == directory + "/tls.crt")
        #expect(flags.tlsFiles(for: loopback, stateDirectory: directory) == nil) // loopback stays plain HTTP
        let given = try HTTPFlags.parse(["--tls-cert", "/c.pem", "--tls-key", "/k.pem"])
        #expect(given.tlsFiles(for: wide, stateDirectory: directory)?.certificate == "/c.pem")
    }
}
