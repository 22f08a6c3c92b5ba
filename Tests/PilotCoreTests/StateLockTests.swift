import Glibc
import PilotCore
import Testing

@Suite struct StateLockTests {
    @Test func aSecondHolderIsRefusedNamingTheFirstAndGetsItOnceReleased() throws {
        var template = Array("/tmp/pilot-lock-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { Issue.record("mkdtemp failed"); return }
        let directory = String(cString: made)
        defer { unlink(directory + "/node.lock"); rmdir(directory) }
        let first = try StateLock(directory: directory)
        do {
            _ = try StateLock(directory: directory)
            Issue.record("a second lock on the same directory was granted")
        } catch {
            #expect("\(error)" == "another pilot node runs on \(directory) (pid \(getpid())); stop it first, or give another --state-dir")
        }
        first.release()
        let second = try StateLock(directory: directory)
        second.release()
        #expect(throws: StateLock.Held.self) { try StateLock(directory: directory + "/missing") }
    }
}
