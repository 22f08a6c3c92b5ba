import Glibc
import Logging
import NIOCore
import NIOPosix
import PilotCore
import PilotCrypto
import PilotNode
import PilotTransport
import PilotWire

/// Tunnel throughput and message rate between two nodes on loopback (two
/// event loops, one per core), beside raw UDP measured by iperf3 in the same
/// run: 1,280-byte datagrams, one per system call.
func runTunnelBench(seconds: Int) async throws {
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    func endpoint() async throws -> (TunnelEndpoint, MultiThreadedEventLoopGroup, SigningKey) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let key = SigningKey.generate()
        let tunnel = TunnelEndpoint(identity: key, loop: group.next(), logger: logger)
        try await tunnel.start(listen: Endpoint(host: "127.0.0.1", port: 0))
        try await tunnel.setTrustGate { _ in true }.get()
        return (tunnel, group, key)
    }
    let (a, groupA, _) = try await endpoint()
    let (b, groupB, bKey) = try await endpoint()
    let target = [b.boundAddress!]

    // Raw UDP anchor: iperf3, same loopback, same datagram size.
    var rawMBps = Double.nan
    if access("/usr/bin/iperf3", X_OK) == 0 {
        let server = try spawn(["/bin/sh", "-c", "exec /usr/bin/iperf3 -s -1 -p 5299 > /dev/null 2>&1"])
        try await Task.sleep(for: .milliseconds(500))
        let output = try captureOutput(["/usr/bin/iperf3", "-c", "127.0.0.1", "-p", "5299", "-u", "-b", "0", "-l", "1280", "-t", "\(seconds)", "-J"])
        var status: Int32 = 0
        kill(server, SIGTERM) // it exits by itself after one test; this covers a client that never connected
        waitpid(server, &status, 0)
        if let json = try? JSONValue.parse(output, limits: .init(maxBytes: 4 << 20, maxDepth: 32)),
           let bits = json["end"]?["sum"]?["bits_per_second"]?.doubleValue, let lost = json["end"]?["sum"]?["lost_percent"]?.doubleValue {
            rawMBps = bits / 8 / 1_000_000 * (1 - lost / 100)
        }
    } else {
        print("iperf3 is not installed (apt-get install iperf3): no raw UDP anchor")
    }

    print("raw UDP anchor: \(fixed(rawMBps, 1)) MB/s; tunnel runs next")
    // Bulk: 1,100-byte messages (one segment each) for about `seconds`.
    let bulkSize = 1100
    let probeCount = 20_000
    let probe = try await a.streamSend(bKey.publicKey, candidates: target, count: probeCount, size: bulkSize)
    let bulkCount = max(probeCount, Int(Double(probeCount) * Double(seconds) * 1_000_000 / Double(max(probe, 1))))
    let bulkBefore = await b.discardedBytes
    let (bulkElapsed, bulkStatistics) = try await a.streamSendCounting(bKey.publicKey, candidates: target, count: bulkCount, size: bulkSize)
    let bulkBytes = await b.discardedBytes - bulkBefore
    let tunnelMBps = Double(bulkBytes) / (Double(bulkElapsed) / 1_000_000) / 1_000_000

    // Small messages: 64 bytes.
    let smallCount = 200_000
    let smallElapsed = try await a.streamSend(bKey.publicKey, candidates: target, count: smallCount, size: 64)
    let smallRate = Double(smallCount) / (Double(smallElapsed) / 1_000_000)

    // Round trips, for latency.
    var rtts: [Double] = []
    for _ in 0..<200 { rtts.append(Double(try await a.ping(bKey.publicKey, candidates: target))) }
    rtts.sort()

    print("")
    print("tunnel benchmark (loopback, two nodes, one event loop each)")
    print("  raw UDP (iperf3, 1280-byte datagrams)   \(fixed(rawMBps, 1)) MB/s received")
    print("  tunnel stream, 1100-byte messages       \(fixed(tunnelMBps, 1)) MB/s (\(bulkBytes / 1_000_000) MB in \(fixed(Double(bulkElapsed) / 1e6, 2)) s)")
    print("  ratio tunnel / raw UDP                  \(fixed(tunnelMBps / rawMBps, 2)); aim: above 300 MB/s")
    if let counters = bulkStatistics {
        print("  bulk segments sent / retransmitted      \(counters.segmentsSent) / \(counters.retransmissions) (\(counters.fastRetransmissions) fast, \(counters.timeouts) timeouts)")
    }
    print("  tunnel stream, 64-byte messages         \(fixed(smallRate, 0)) messages/s")
    print("  datagram ping round trip p50/p99        \(fixed(percentile(rtts, 0.5) / 1000, 3)) ms / \(fixed(percentile(rtts, 0.99) / 1000, 3)) ms")
    await a.stop()
    await b.stop()
    try? await groupA.shutdownGracefully()
    try? await groupB.shutdownGracefully()
}

/// Runs a program and returns what it printed on stdout.
func captureOutput(_ argv: [String]) throws -> String {
    var pipe: [Int32] = [0, 0]
    guard Glibc.pipe(&pipe) == 0 else { throw BenchError("pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipe[0])
    var pid: pid_t = 0
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    let status = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
    posix_spawn_file_actions_destroy(&actions)
    close(pipe[1])
    guard status == 0 else { close(pipe[0]); throw BenchError("cannot start \(argv[0])") }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
        if n <= 0 { break }
        output.append(contentsOf: buffer[..<n])
    }
    close(pipe[0])
    var exit: Int32 = 0
    waitpid(pid, &exit, 0)
    return String(decoding: output, as: UTF8.self)
}

extension TunnelEndpoint {
    /// The benchmark's bulk driver: `count` messages of `size` bytes over one
    /// stream to the discard port (9) of `peer`; returns the microseconds
    /// from the open connection to the last acknowledgement. Built on the
    /// endpoint's public stream calls, like any client of a stream.
    func streamSend(_ peer: PublicKey, candidates: [Endpoint], count: Int, size: Int) async throws -> Int64 {
        try await streamSendCounting(peer, candidates: candidates, count: count, size: size).elapsed
    }

    /// `streamSend`, with the connection's transport counters at the end.
    func streamSendCounting(_ peer: PublicKey, candidates: [Endpoint], count: Int, size: Int) async throws
        -> (elapsed: Int64, statistics: ReliableChannel.Statistics?) {
        let connection = try await connectStream(to: peer, candidates: candidates, port: OverlayMessage.discardPort) { _ in }
        let payload = [UInt8](repeating: 0x5A, count: size)
        let started = TunnelTime.current().now
        try await sendAll(count: count, on: connection) { _ in payload }
        let elapsed = TunnelTime.current().now - started
        let statistics = try await loop.submit {
            defer { self.resetStream(connection, reason: "done") }
            return self.streamStatistics(connection)
        }.get()
        return (elapsed, statistics)
    }
}
