import Logging
import Synchronization
import NIOPosix
import PilotCore
import PilotCrypto
import PilotNode
import PilotWire
import Testing

/// Two nodes' tunnel endpoints in one process, over real UDP on loopback.
@Suite(.serialized) struct TunnelEndpointTests {
    static func pair() async throws -> (TunnelEndpoint, TunnelEndpoint, SigningKey, MultiThreadedEventLoopGroup) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let aKey = SigningKey.generate(), bKey = SigningKey.generate()
        let a = TunnelEndpoint(identity: aKey, loop: group.next(), logger: logger)
        let b = TunnelEndpoint(identity: bKey, loop: group.next(), logger: logger)
        try await a.start(listen: Endpoint(host: "127.0.0.1", port: 0))
        try await b.start(listen: Endpoint(host: "127.0.0.1", port: 0))
        return (a, b, bKey, group)
    }

    @Test func pingStreamEchoAndBulkStreamWorkOverRealSockets() async throws {
        let (a, b, bKey, group) = try await Self.pair()
        let target = [b.boundAddress!]
        let rtt = try await a.ping(bKey.publicKey, candidates: target)
        #expect(rtt > 0)
        _ = try await a.streamEcho(bKey.publicKey, candidates: target, count: 2000)
        try await b.setTrustGate { _ in true }.get()
        _ = try await a.streamSend(bKey.publicKey, candidates: target, count: 2000, size: 1100)
        #expect(await b.discardedBytes == 2000 * 1100)
        await a.stop()
        await b.stop()
        try await group.shutdownGracefully()
    }

    @Test func aServiceAcceptsStreamsFromTrustedPeersOnItsPort() async throws {
        let (a, b, bKey, group) = try await Self.pair()
        let target = [b.boundAddress!]
        let received = Mutex<[[UInt8]]>([])
        try await b.setTrustGate { _ in true }.get()
        try await b.acceptStreams(on: 1002) { event in
            if case .message(_, let bytes) = event { received.withLock { $0.append(bytes) } }
        }.get()
        _ = try await a.streamSend(bKey.publicKey, candidates: target, port: 1002, count: 10, size: 100)
        #expect(received.withLock { $0 } == Array(repeating: [UInt8](repeating: 0x5A, count: 100), count: 10))
        #expect(await b.discardedBytes == 0)
        // A port with no service refuses the connection with its reason: a
        // reset from the peer over the open tunnel, not a timeout.
        let refused = await #expect(throws: TunnelError.self) { _ = try await a.streamSend(bKey.publicKey, candidates: target, port: 1003, count: 1, size: 1) }
        #expect(Self.resetReason(refused) == "the connection to port 1003 closed after 1 of 1 messages (port 1003 is closed)")
        #expect(Self.resetCode(refused) == .portClosed)
        await a.stop()
        await b.stop()
        try await group.shutdownGracefully()
    }

    @Test func datagramsThatWouldExceed1280BytesAreRefused() async throws {
        let (a, b, bKey, group) = try await Self.pair()
        let target = [b.boundAddress!]
        let received = Mutex<[Int]>([])
        try await b.setTrustGate { _ in true }.get()
        try await b.listen(port: 1234) { _, message in received.withLock { $0.append(message.data.count) } }.get()
        _ = try await a.ping(bKey.publicKey, candidates: target) // the tunnel is open
        let largest = OverlayMessage.maxDatagramData
        #expect(a.send(OverlayMessage(sourcePort: 1, destinationPort: 1234, data: Array(repeating: 0, count: largest)), to: bKey.publicKey, candidates: target))
        #expect(!a.send(OverlayMessage(sourcePort: 1, destinationPort: 1234, data: Array(repeating: 0, count: largest + 1)), to: bKey.publicKey, candidates: target))
        #expect(a.send(OverlayMessage(sourcePort: 1, destinationPort: 1234, data: [1]), to: bKey.publicKey, candidates: target))
        // The largest fits one tunnel datagram and arrives; the one byte more never left.
        for _ in 0..<300 where received.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(received.withLock { $0 } == [largest, 1])
        await a.stop()
        await b.stop()
        try await group.shutdownGracefully()
    }

    @Test func anUntrustedPeerCannotOpenAStreamBeyondTheEchoPort() async throws {
        let (a, b, bKey, group) = try await Self.pair()
        let target = [b.boundAddress!]
        // The echo port takes the untrusted peer's stream…
        _ = try await a.streamEcho(bKey.publicKey, candidates: target, count: 10)
        // …the discard port (9) refuses it, for that reason, over the open tunnel.
        let refused = await #expect(throws: TunnelError.self) { _ = try await a.streamSend(bKey.publicKey, candidates: target, count: 10, size: 10) }
        #expect(Self.resetReason(refused) == "the connection to port 9 closed after 10 of 10 messages (not trusted for port 9)")
        #expect(Self.resetCode(refused) == .notTrusted)
        #expect(await b.discardedBytes == 0)
        // Trusted, the same peer gets through.
        try await b.setTrustGate { _ in true }.get()
        _ = try await a.streamSend(bKey.publicKey, candidates: target, count: 10, size: 10)
        #expect(await b.discardedBytes == 100)
        await a.stop()
        await b.stop()
        try await group.shutdownGracefully()
    }

    /// Why the peer reset a connection, if it did (and the error is not, say, a timeout).
    static func resetReason(_ error: TunnelError?) -> String? {
        if case .reset(let why)? = error { why.reason } else { nil }
    }

    static func resetCode(_ error: TunnelError?) -> StreamReset.Code? {
        if case .reset(let why)? = error { why.code } else { nil }
    }
}

extension TunnelEndpoint {
    /// The tests' bulk sender, on the endpoint's public stream calls:
    /// `count` messages of `size` bytes 0x5A to `port` of `peer` (the
    /// discard port unless told), until the peer has acknowledged them all.
    /// A reset names the port it came from.
    func streamSend(_ peer: PublicKey, candidates: [Endpoint], port: UInt16 = OverlayMessage.discardPort, count: Int, size: Int) async throws {
        let connection = try await connectStream(to: peer, candidates: candidates, port: port) { _ in }
        do {
            try await sendAll(count: count, on: connection) { _ in [UInt8](repeating: 0x5A, count: size) }
        } catch TunnelError.reset(let why) {
            throw TunnelError.reset(StreamReset(why.code, "the connection to port \(port) " + why.reason))
        }
        try await loop.submit { self.resetStream(connection, reason: "done") }.get()
    }
}
