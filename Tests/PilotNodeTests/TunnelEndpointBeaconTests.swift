import Logging
import NIOCore
import NIOPosix
import PilotCore
import PilotCrypto
import PilotNode
import PilotTransport
import PilotWire
import Synchronization
import Testing

/// The endpoint carries out what `BeaconClient` decides, against a beacon
/// made of `BeaconCore` on a loopback UDP socket.
@Suite(.serialized) struct TunnelEndpointBeaconTests {
    /// A beacon on 127.0.0.1: `BeaconCore` answering on its own socket.
    static func beacon(on group: MultiThreadedEventLoopGroup, registry: PublicKey) async throws -> (any Channel, Endpoint) {
        let channel = try await DatagramBootstrap(group: group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                var core = BeaconCore(issuer: registry)
                try channel.pipeline.syncOperations.addHandler(DatagramReader { bytes, source, channel in
                    guard let ip = source.ipAddress, let port = source.port else { return }
                    for out in core.receive(bytes, from: Endpoint(host: ip, port: UInt16(port)), time: TunnelTime.current()) {
                        guard let to = try? SocketAddress(ipAddress: out.to.host, port: Int(out.to.port)) else { continue }
                        channel.writeAndFlush(AddressedEnvelope(remoteAddress: to, data: channel.allocator.buffer(bytes: out.datagram)), promise: nil)
                    }
                })
            }
        }.bind(host: "127.0.0.1", port: 0).get()
        return (channel, Endpoint(host: "127.0.0.1", port: UInt16(channel.localAddress!.port!)))
    }

    @Test func helloAtStartThenAnIntroductionReachesAPeerWithNoKnownEndpoint() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let registry = SigningKey.generate()
        let (beaconChannel, beacon) = try await Self.beacon(on: group, registry: registry.publicKey)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let aKey = SigningKey.generate(), bKey = SigningKey.generate()
        let a = TunnelEndpoint(identity: aKey, loop: group.next(), logger: logger, beacon: beacon)
        let b = TunnelEndpoint(identity: bKey, loop: group.next(), logger: logger, beacon: beacon)
        let observed = Mutex<[PublicKey: Endpoint]>([:])
        for (endpoint, key) in [(a, aKey.publicKey), (b, bKey.publicKey)] {
            endpoint.whenObservedEndpointChanges { seen in observed.withLock { $0[key] = seen } }
            try await endpoint.start(listen: Endpoint(host: "127.0.0.1", port: 0))
        }
        // No ticket yet: no hello, so the beacon knows neither node.
        try await Task.sleep(for: .milliseconds(200))
        #expect(observed.withLock { $0.isEmpty })
        // The registry's tickets arrive (as RegistryClient hands them on): each goes in a hello at once.
        for (endpoint, key) in [(a, aKey.publicKey), (b, bKey.publicKey)] {
            endpoint.renewBeaconTicket(BeaconTicket.issue(for: key, network: 1, now: WallClock.nowMilliseconds(), lifetimeMs: 60_000, by: registry))
        }
        // The first hellos: the beacon tells each node where it sees it.
        for _ in 0..<300 where observed.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(observed.withLock { $0 } == [aKey.publicKey: a.boundAddress!, bKey.publicKey: b.boundAddress!])
        // a knows no endpoint of b: only the beacon's introduction (punches to both) opens the tunnel.
        let rtt = try await a.ping(bKey.publicKey, candidates: [])
        #expect(rtt > 0)
        #expect(await a.path(to: bKey.publicKey) == .direct(b.boundAddress!))
        await a.stop()
        await b.stop()
        try await beaconChannel.close()
        try await group.shutdownGracefully()
    }
}
