#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import PilotCore
import PilotCrypto
import PilotTransport
import Testing

/// A node that stops after its successor bound the same control socket
/// path (a restart that did not wait) leaves the successor's socket alone.
@Suite struct ControlSocketFileTests {
    @Test func stoppingRemovesTheSocketOnlyIfItIsStillOurs() async throws {
        var template = Array("/tmp/pilot-control-test-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        defer { rmdir(directory) }
        let path = directory + "/pilot.sock"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let old = try await ControlServer.start(group: group, path: path) { _ in .null }
        let oldFile = try #require(ControlServer.SocketFile(path))
        let successor = try await ControlServer.start(group: group, path: path) { _ in .null }
        let successorFile = try #require(ControlServer.SocketFile(path))
        #expect(oldFile != successorFile)
        #expect(ControlServer.SocketFile(path) == successorFile)
        try await old.close()
        #expect(ControlServer.SocketFile(path) == successorFile)
        oldFile.removeIfStillOurs()
        #expect(ControlServer.SocketFile(path) == successorFile)
        try await successor.close()
        successorFile.removeIfStillOurs()
        #expect(ControlServer.SocketFile(path) == nil)
        try await group.shutdownGracefully()
    }
}
