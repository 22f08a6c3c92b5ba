#if canImport(Glibc)
import Glibc
#endif
import PilotCore
import PilotCrypto
import PilotNode
import Testing

@Suite struct HandshakeFloorsTests {
    let web = SigningKey.generate().publicKey, db = SigningKey.generate().publicKey

    func scratch() -> String {
        var template = Array("/tmp/pilot-floors-test-XXXXXX".utf8CString)
        return String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
    }

    func remove(_ directory: String) {
        for name in (try? LocalFile.listDirectory(directory)) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    @Test func theNewestInitiationPerPeerSurvivesARestart() throws {
        let directory = scratch()
        defer { remove(directory) }
        let path = directory + "/handshakes"
        do {
            let floors = try HandshakeFloors(path: path)
            floors.answered(web, 100)
            floors.answered(db, 50)
            floors.answered(web, 300)
            floors.answered(web, 200) // older: ignored
        }
        let again = try HandshakeFloors(path: path)
        #expect(again.floors == [web: 300, db: 50])
        var mode = stat()
        stat(path, &mode)
        #expect(mode.st_mode & 0o777 == 0o600)
    }

    @Test func aTornLastRecordIsIgnoredAndAForeignFileRefusedWithItsName() throws {
        let directory = scratch()
        defer { remove(directory) }
        let path = directory + "/handshakes"
        do {
            let floors = try HandshakeFloors(path: path)
            floors.answered(web, 7)
        }
        var bytes = try LocalFile.read(path, maxBytes: 1 << 20)
        bytes += [1, 2, 3] // a crash mid-record
        try LocalFile.writeAtomically(path, bytes, mode: 0o600)
        #expect(try HandshakeFloors(path: path).floors == [web: 7])
        try LocalFile.writeAtomically(path, Array("not this file\n".utf8), mode: 0o600)
        #expect(throws: FileError.self) { try HandshakeFloors(path: path) }
        do { _ = try HandshakeFloors(path: path) } catch {
            #expect("\(error)".contains(path))
            #expect("\(error)".contains("not a handshake floor file"))
        }
    }

    @Test func theFileIsCompactedWhenItHoldsFarMoreRecordsThanKeys() throws {
        let directory = scratch()
        defer { remove(directory) }
        let path = directory + "/handshakes"
        let floors = try HandshakeFloors(path: path)
        for timestamp in 1...3_000 { floors.answered(web, UInt64(timestamp)) }
        let size = try LocalFile.read(path, maxBytes: 1 << 20).count
        #expect(size < 2_000 * 40) // 3,000 records appended, compacted on the way
        #expect(try HandshakeFloors(path: path).floors == [web: 3_000])
    }
}
