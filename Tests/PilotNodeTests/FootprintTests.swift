import Glibc
import PilotCore
import PilotTransport
import Testing

/// The agent's memory measures: the program text start-up touched is
/// released, and the process runs on (its code maps itself back in).
@Suite(.serialized) struct FootprintTests {
    static func residentFileKB() throws -> Int {
        let status = try LocalFile.readText("/proc/self/status", maxBytes: 1 << 16)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func releasingStartupCodeUnmapsTheProgramTextAndTheProcessRunsOn() throws {
        let before = try Self.residentFileKB()
        let released = releaseStartupCode()
        // The test runner's text is many megabytes; all of it was released.
        #expect(released > 1 << 20)
        let after = try Self.residentFileKB()
        #expect(after < before, "RssFile \(before) kB before, \(after) kB after")
        // Code runs again from the page cache: a hash, a sort, a format.
        var values = (0..<1000).map { ($0 * 7919) % 1000 }
        values.sort()
        #expect(values == Array(0..<1000))
        #expect(String(describing: 3.25) == "3.25")
    }
}
