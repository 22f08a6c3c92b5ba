#if canImport(Glibc)
import Glibc
#endif
@testable import PilotCLI
import PilotCore
import Testing

/// The join token from a file or the environment stays out of ps; inline it
/// works with a warning.
@Suite struct JoinTokenTests {
    @Test func aFileTheEnvironmentOrInlineWithAWarning() throws {
        var template = Array("/tmp/pilot-join-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        defer { _ = unlink(directory + "/token"); _ = rmdir(directory) }
        try LocalFile.writeAtomically(directory + "/token", Array("fleet-secret-42\n".utf8), mode: 0o600)
        var warnings: [String] = []
        #expect(try JoinToken.resolve("@" + directory + "/token", environment: [:]) { warnings.append($0) } == "fleet-secret-42")
        #expect(try JoinToken.resolve("env:FLEET", environment: ["FLEET": "from-env-123"]) { warnings.append($0) } == "from-env-123")
        #expect(try JoinToken.resolve(nil, environment: ["PILOT_JOIN_TOKEN": "default-env-1"]) { warnings.append($0) } == "default-env-1")
        #expect(try JoinToken.resolve(nil, environment: [:]) { warnings.append($0) } == nil)
        #expect(warnings.isEmpty)
        #expect(try JoinToken.resolve("inline-token-9", environment: [:]) { warnings.append($0) } == "inline-token-9")
        #expect(warnings.count == 1 && warnings[0].contains("ps shows it") && !warnings[0].contains("inline-token-9"))
        // Bad ones say what is wrong, naming the flag but not the secret.
        for bad in ["@" + directory + "/missing", "env:UNSET_VARIABLE", "short", "has space 123"] {
            do {
                _ = try JoinToken.resolve(bad, environment: [:]) { _ in }
                Issue.record("\(bad) was accepted")
            } catch {
                #expect("\(error)".contains("--join-token"), "\(error)")
            }
        }
        try LocalFile.writeAtomically(directory + "/token", Array("tiny\n".utf8), mode: 0o600)
        #expect(throws: (any Error).self) { try JoinToken.resolve("@" + directory + "/token", environment: [:]) { _ in } }
    }
}
