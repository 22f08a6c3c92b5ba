#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import PilotCore
import PilotRemoteWrite
import PilotSQLite
import PilotStore
@testable import PilotRoles
import Testing

/// A remote-write endpoint on loopback that records what it is sent and
/// answers from a script of statuses (the last repeats).
private final class FakeEndpoint: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    struct Received: Sendable { var headers: HTTPHeaders; var body: [UInt8] }
    let received = NIOLockedValueBox<[Received]>([])
    let statuses: [Int]
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    init(statuses: [Int]) { self.statuses = statuses }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): head = request; body = []
        case .body(let part): body += part.readableBytesView
        case .end:
            let count = received.withLockedValue { list in list.append(Received(headers: head!.headers, body: body)); return list.count }
            let status = statuses[min(count, statuses.count) - 1]
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "0")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@Suite struct RemoteWriterTests {
    @Test func sendsSnappyProtobufWithItsHeadersRetriesAndEmptiesTheBacklog() async throws {
        var template = Array("/tmp/pilot-writer-test-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        defer { for suffix in ["", "-wal", "-shm"] { unlink(directory + "/store.db" + suffix) }; rmdir(directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let endpoint = FakeEndpoint(statuses: [503, 503, 204])
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(endpoint)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let loop = group.next()
        let store = try SeriesStore(path: directory + "/store.db")
        let outbox = try RemoteWriteOutbox(connection: store.connection, maxBytes: 1 << 20)
        let samples = (0..<5).map { Sample(metric: "cpu_pct", labels: [("host", "web-01")], value: Double($0) + 0.5, timestamp: 1_764_000_000_000 + Int64($0) * 30_000) }
        try store.append(samples) { fresh in try outbox.enqueue(try RemoteWriteRequest.encode(fresh), samples: fresh.count) }
        let target = try RemoteWriteTarget("http://tenant:s3cret@127.0.0.1:\(server.localAddress!.port!)/api/v1/write")
        let writer = RemoteWriter(target: target, headers: [("X-Scope-OrgID", "tenant-1")], outbox: outbox, loop: loop, group: group,
                                  flushDelay: .milliseconds(10), logger: Logger(label: "test"))
        try await loop.submit { writer.queued() }.get()
        // Two 503s (retried after 250 and 500 ms), then accepted.
        for _ in 0..<100 where try await loop.submit({ !outbox.isEmpty }).get() { try await Task.sleep(for: .milliseconds(50)) }
        #expect(try await loop.submit { outbox.isEmpty }.get())
        let statistics = try await loop.submit { writer.statistics }.get()
        #expect(statistics.sentSamples == 5 && statistics.failedAttempts == 2 && statistics.refusedSamples == 0)
        let requests = endpoint.received.withLockedValue { $0 }
        #expect(requests.count == 3)
        let last = try #require(requests.last)
        #expect(last.headers["Content-Encoding"] == ["snappy"])
        #expect(last.headers["Content-Type"] == ["application/x-protobuf"])
        #expect(last.headers["X-Prometheus-Remote-Write-Version"] == ["0.1.0"])
        #expect(last.headers["X-Scope-OrgID"] == ["tenant-1"])
        #expect(last.headers["Authorization"] == ["Basic dGVuYW50OnMzY3JldA=="]) // tenant:s3cret
        let series = try RemoteWriteRequest.decode(try Snappy.decompress(last.body, maxLength: 1 << 20))
        #expect(series.count == 1 && series[0].labels.map { "\($0.0)=\($0.1)" } == ["__name__=pilot_cpu_pct", "host=web-01"])
        #expect(series[0].samples.map(\.value) == [0.5, 1.5, 2.5, 3.5, 4.5])
        await writer.shutdown()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
