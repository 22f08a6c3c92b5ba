import Glibc
import Logging
import PilotCore
import PilotCrypto
import PilotNode
import PilotRegistry
import PilotRoles
import PilotWire
import NIOPosix
import Testing

/// Bad input against a real registry on loopback, each time with an honest
/// node heartbeating through it and checked in the same test.
@Suite(.serialized) struct RegistryAbuseTests {
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/pilot-registry-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw TestFailure("mkdtemp failed") }
        return String(cString: made)
    }

    /// A registry, and an honest node registered with it over the real client.
    final class Fixture: @unchecked Sendable {
        let service: RegistryService
        let port: UInt16
        let honest: RegistryClient
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

        init(configure: (inout RegistryService.Options) -> Void = { _ in }) async throws {
            let directory = try RegistryAbuseTests.temporaryDirectory()
            var options = RegistryService.Options(stateDirectory: directory)
            options.listen = Endpoint(host: "127.0.0.1", port: 0)
            options.http = nil
            options.handshakeTimeoutMilliseconds = 1000
            configure(&options)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            service = try RegistryService(options: options, identity: .generate(), logger: logger)
            try await service.start()
            port = UInt16(service.boundAddress.split(separator: ":").last!)!
            var clientOptions = RegistryClient.Options(registry: Endpoint(host: "127.0.0.1", port: port), hostname: "honest", pinPath: directory + "/pin")
            clientOptions.keepaliveSeconds = 1
            honest = RegistryClient(options: clientOptions, identity: .generate(), loop: group.next(), logger: logger)
            honest.start()
            try await waitUntil("the honest node registered") { await self.honest.currentStatus().registered }
        }

        /// The honest node is still served: registered, and a request answers.
        func checkHonestNodeServed() async throws {
            let status = await honest.currentStatus()
            #expect(status.registered, "honest node lost its registration: \(status.lastError ?? "")")
            let reply = try await honest.request(.lookup, JSONObject([("hostname", .string("honest"))]))
            #expect(reply["node"]?["presence"]?.stringValue == "online")
        }

        func stop() async {
            honest.stop()
            try? await service.shutdown()
            try? await group.shutdownGracefully()
        }
    }

    static func waitUntil(_ what: String, seconds: Double = 10, _ condition: () async -> Bool) async throws {
        for _ in 0..<Int(seconds * 20) {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    /// A registry that wants every heartbeat signed (as one before bare
    /// heartbeats): the node signs them from its first refusal on and stays
    /// online through several offline windows.
    @Test func aNodeSignsItsHeartbeatsForARegistryThatWantsThem() async throws {
        let fixture = try await Fixture { options in
            options.engine.acceptsBareHeartbeats = false
            options.engine.offlineAfterMs = 2500
        }
        try await Task.sleep(for: .seconds(6))
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aForgedSignatureIsRefusedWhileTheHonestNodeIsServed() async throws {
        let fixture = try await Fixture()
        let client = try RawRegistryClient(port: fixture.port)
        #expect(try client.request(.register, JSONObject([("hostname", .string("mallory"))]))["ok"] == .bool(true))
        let forged = try client.request(.setTags, JSONObject([("tags", .array([.string("x")]))]), signer: .generate())
        #expect(forged["code"] == .string("bad_signature"))
        #expect(forged["error"]?.stringValue == "the request's signature does not verify with this node's key")
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aReplayedRequestIsRefused() async throws {
        let fixture = try await Fixture()
        let client = try RawRegistryClient(port: fixture.port)
        #expect(try client.request(.register, JSONObject([("hostname", .string("replayer"))]))["ok"] == .bool(true))
        let request = RegistryProtocol.request(id: 50, .setTags, body: JSONObject([("tags", .array([.string("a")]))]), signer: client.key, now: RawRegistryClient.now())
        try client.sendRaw(request)
        #expect(try client.reply()["ok"] == .bool(true))
        try client.sendRaw(request) // the same signed bytes again, freshly sealed
        let replay = try client.reply()
        #expect(replay["code"] == .string("replayed"))
        #expect(replay["error"]?.stringValue == "the request was already received (replay)")
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aStaleTimestampIsRefused() async throws {
        let fixture = try await Fixture()
        let client = try RawRegistryClient(port: fixture.port)
        let stale = try client.request(.register, JSONObject([("hostname", .string("late"))]), now: RawRegistryClient.now() - 600_000)
        #expect(stale["code"] == .string("stale_timestamp"))
        #expect(stale["error"]?.stringValue?.contains("check the node's clock") == true)
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aHostnameTakenByAnotherKeyIsRefused() async throws {
        let fixture = try await Fixture()
        let client = try RawRegistryClient(port: fixture.port)
        let taken = try client.request(.register, JSONObject([("hostname", .string("honest"))]))
        #expect(taken["code"] == .string("hostname_taken"))
        #expect(taken["error"]?.stringValue?.contains("pilot registry revoke honest") == true)
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func anOversizedFrameIsRefusedFromItsHeader() async throws {
        let fixture = try await Fixture()
        let socket = try TestSocket(host: "127.0.0.1", port: fixture.port)
        socket.send([1, 1, 0, 0x10, 0, 0]) // a handshake frame claiming 1 MiB
        let frame = try #require(try socket.receiveFrame())
        #expect(frame.kind == .error)
        #expect(String(decoding: frame.payload, as: UTF8.self).contains("exceeds the limit of"))
        #expect(socket.isClosedByPeer())
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aTruncatedFrameTimesOutWithAReason() async throws {
        let fixture = try await Fixture()
        let socket = try TestSocket(host: "127.0.0.1", port: fixture.port)
        socket.send([1, 1, 0, 0, 0, 100, 1, 2, 3]) // promises 100 bytes, sends 3
        let frame = try #require(try socket.receiveFrame())
        #expect(frame.kind == .error)
        #expect(String(decoding: frame.payload, as: UTF8.self) == "handshake timed out")
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func randomBytesOnThePortAreRefused() async throws {
        let fixture = try await Fixture()
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let socket = try TestSocket(host: "127.0.0.1", port: fixture.port)
            var junk = (0..<Int.random(in: 1...4096, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if round % 2 == 0 { junk[0] = 1 } // sometimes a valid version byte, to reach deeper
            socket.send(junk)
            if let frame = try socket.receiveFrame() {
                #expect(frame.kind == .error, "round \(round): \(frame.kind)")
                #expect(!frame.payload.isEmpty)
            }
        }
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aFloodOfRegistrationsFromOneAddressIsLimitedAndHeartbeatsGoOn() async throws {
        let fixture = try await Fixture { options in
            options.engine.registrationBurst = 3
            options.engine.registrationsPerMinute = 1
        }
        var limited = 0, accepted = 0
        for index in 0..<30 {
            let flooder = try RawRegistryClient(port: fixture.port, sourceAddress: "127.0.0.2")
            let reply = try flooder.request(.register, JSONObject([("hostname", .string("flood-\(index)"))]))
            if reply["code"] == .string("rate_limited") { limited += 1 } else if reply["ok"] == .bool(true) { accepted += 1 }
            if index % 10 == 0 { try await fixture.checkHonestNodeServed() }
        }
        #expect(accepted == 3)
        #expect(limited == 27)
        // Heartbeats kept the honest node online through the flood (1 s keepalive).
        try await Task.sleep(for: .milliseconds(1500))
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func aWatcherIsToldWhenANodeGoesOfflineAndComesBack() async throws {
        let fixture = try await Fixture { options in options.engine.offlineAfterMs = 1500 }
        let watcher = try RawRegistryClient(port: fixture.port)
        #expect(try watcher.request(.register, JSONObject([("hostname", .string("aggregator"))]))["ok"] == .bool(true))
        #expect(try watcher.request(.watch)["ok"] == .bool(true))
        let node = try RawRegistryClient(port: fixture.port)
        #expect(try node.request(.register, JSONObject([("hostname", .string("db-01"))]))["ok"] == .bool(true))

        func nextEvent() throws -> JSONValue {
            for _ in 0..<20 {
                let message = try watcher.reply()
                if message["event"] != nil, message["body"]?["hostname"] == .string("db-01") { return message }
            }
            throw TestFailure("no presence event for db-01")
        }
        #expect(try nextEvent()["body"]?["presence"] == .string("online"))
        // db-01 falls silent; the watcher keeps itself alive meanwhile.
        try await Task.sleep(for: .milliseconds(800))
        _ = try watcher.request(.heartbeat)
        #expect(try nextEvent()["body"]?["presence"] == .string("offline"))
        _ = try node.request(.heartbeat)
        #expect(try nextEvent()["body"]?["presence"] == .string("online"))
        await fixture.stop()
    }

    @Test func anIdleConnectionIsClosedWhileABusyOneStays() async throws {
        let fixture = try await Fixture { options in options.idleTimeoutSeconds = 2 }
        let idle = try RawRegistryClient(port: fixture.port)
        let busy = try RawRegistryClient(port: fixture.port)
        #expect(try busy.request(.register, JSONObject([("hostname", .string("busy"))]))["ok"] == .bool(true))
        for _ in 0..<6 { // 3 s of traffic every half second: longer than the idle timeout
            try await Task.sleep(for: .milliseconds(500))
            #expect(try busy.request(.heartbeat)["ok"] == .bool(true))
        }
        let frame = try #require(try idle.socket.receiveFrame())
        #expect(frame.kind == .error)
        #expect(String(decoding: frame.payload, as: UTF8.self) == "connection idle")
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }

    @Test func tooManyConnectionsFromOneAddressAreRefusedWithAReason() async throws {
        let fixture = try await Fixture { options in options.connectionsPerAddress = 2 }
        let first = try TestSocket(host: "127.0.0.1", port: fixture.port, sourceAddress: "127.0.0.3")
        let second = try TestSocket(host: "127.0.0.1", port: fixture.port, sourceAddress: "127.0.0.3")
        let third = try TestSocket(host: "127.0.0.1", port: fixture.port, sourceAddress: "127.0.0.3")
        let frame = try #require(try third.receiveFrame())
        #expect(String(decoding: frame.payload, as: UTF8.self).contains("too many connections from 127.0.0.3"))
        _ = (first, second)
        try await fixture.checkHonestNodeServed()
        await fixture.stop()
    }
}
