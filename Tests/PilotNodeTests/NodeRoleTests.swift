import Glibc
import Logging
import NIOCore
import NIOEmbedded
import PilotCore
import PilotCrypto
import PilotNode
@testable import PilotTransport
import ServiceLifecycle
import Synchronization
import Testing

/// What a test role saw, in order, shared by the roles of one test.
final class RoleLog: Sendable {
    let events = Mutex<[String]>([])
    func add(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
}

/// `echo TEXT`: answered by the test role with its name.
struct EchoRequest: ControlRequest {
    static let commands = ["echo"]
    var text: String
    init(command: String, fields: JSONValue) throws(ControlRequestError) {
        text = try fields.requiredString("text", for: "echo")
    }
}

final class TestRole: NodeRole, @unchecked Sendable {
    let name: String
    let log: RoleLog
    let answersEcho: Bool
    init(_ name: String, log: RoleLog, answersEcho: Bool = false) {
        self.name = name
        self.log = log
        self.answersEcho = answersEcho
    }
    func register(_ requests: inout ControlRequests) {
        guard answersEcho else { return }
        requests.answer(EchoRequest.self) { [name] request in JSONObject([("echo", .string(request.text)), ("by", .string(name))]) }
    }
    func start(on node: Node) async throws { log.add("start \(name)") }
    func statusSection() async -> JSONValue? { .object(JSONObject([("started", .bool(log.all.contains("start \(name)")))])) }
    func stop() async { log.add("stop \(name)") }
}

@Suite struct NodeRoleTests {
    @Test func aRequestReachesTheHandlerOfItsTypeWithTypedFields() async throws {
        var requests = ControlRequests()
        TestRole("aggregator", log: RoleLog(), answersEcho: true).register(&requests)
        let reply = await requests.reply(to: try JSONValue.parse(#"{"v":1,"cmd":"echo","text":"hi"}"#))
        #expect(reply["ok"] == .bool(true))
        #expect(reply["echo"]?.stringValue == "hi")
        #expect(reply["by"]?.stringValue == "aggregator")
        #expect(requests.commands == ["echo"])
    }

    @Test func aRequestWithoutItsFieldsIsRefusedWithItsOwnError() async throws {
        var requests = ControlRequests()
        TestRole("store", log: RoleLog(), answersEcho: true).register(&requests)
        let reply = await requests.reply(to: try JSONValue.parse(#"{"v":1,"cmd":"echo"}"#))
        #expect(reply["ok"] == .bool(false))
        #expect(reply["error"]?.stringValue == "echo needs text")
        // The node's own types read their fields the same way.
        #expect(throws: ControlRequestError.self) { try PingRequest(command: "ping", fields: .object(JSONObject())) }
        #expect(throws: ControlRequestError.self) { try PingRequest(command: "ping", fields: try JSONValue.parse(#"{"host":"db-01","stream":0}"#)) }
        #expect(throws: ControlRequestError.self) { try TrustRequest(command: "handshake", fields: .object(JSONObject())) }
        let approve = try TrustRequest(command: "approve", fields: try JSONValue.parse(#"{"host":"web-01"}"#))
        #expect(approve.action == .approve && approve.host == "web-01")
    }

    @Test func aCommandNoRoleAnswersIsRefusedByName() async throws {
        let reply = await ControlRequests().reply(to: try JSONValue.parse(#"{"v":1,"cmd":"alerts"}"#))
        #expect(reply["ok"] == .bool(false))
        #expect(reply["error"]?.stringValue == "unknown control command 'alerts'")
    }

    /// The control protocol over an in-memory channel: request lines in,
    /// reply lines out, the version checked, an endless line cut off.
    @Test(.timeLimit(.minutes(1))) func aRoleAnswersOverAnEmbeddedControlChannel() async throws {
        var requests = ControlRequests()
        TestRole("aggregator", log: RoleLog(), answersEcho: true).register(&requests)
        let answer = requests
        // NIOAsyncTestingChannel: the in-memory channel whose loop may be
        // completed from the task the handler's reply comes from.
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandler(ControlServer.LineHandler(handler: { await answer.reply(to: $0) }, streaming: [:]))
        func send(_ line: String) async throws { try await channel.writeInbound(channel.allocator.buffer(string: line)) }
        func reply() async throws -> JSONValue {
            var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            return try JSONValue.parse(Array(buffer.readString(length: buffer.readableBytes)!.utf8.dropLast()))
        }
        // Split across reads, as a socket may deliver it.
        try await send(#"{"v":1,"cmd":"ec"#)
        try await send(#"ho","text":"over the wire"}"# + "\n")
        let first = try await reply()
        #expect(first["echo"]?.stringValue == "over the wire")
        #expect(first["v"] == .number(1))
        try await send(#"{"v":2,"cmd":"echo","text":"x"}"# + "\n")
        #expect(try await reply()["error"]?.stringValue?.contains("control protocol version 2 is not 1") == true)
        try await send("not json\n")
        #expect(try await reply()["error"]?.stringValue?.hasPrefix("bad control request") == true)
        try await send(String(repeating: "x", count: ControlSocket.maxLineBytes + 10))
        #expect(try await reply()["error"]?.stringValue == "request longer than \(ControlSocket.maxLineBytes) bytes")
        _ = try? await channel.finish()
    }

    /// A node on loopback with two roles: their status sections and requests
    /// through the real control socket; a service group stops the roles in
    /// reverse order, then the node, whose socket file is gone.
    @Test func aNodeRunsItsRolesAndStopsThemInReverseOrder() async throws {
        var template = Array("/tmp/pilot-node-test-XXXXXX".utf8CString)
        let directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        defer {
            for name in (try? LocalFile.listDirectory(directory)) ?? [] { unlink(directory + "/" + name) }
            rmdir(directory)
        }
        var options = Node.Options(stateDirectory: directory, configPath: directory + "/config", hostname: "hub-01")
        options.tunnelListen = Endpoint(host: "127.0.0.1", port: 0)
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let node = Node(options: options, identity: SigningKey.generate(), logger: logger)
        let log = RoleLog()
        node.attach(TestRole("aggregator", log: log, answersEcho: true))
        node.attach(TestRole("store", log: log))
        try await node.start()
        #expect(log.all == ["start aggregator", "start store"])
        #expect(LocalFile.exists(node.controlPath))

        let status = try ControlClient.call(path: node.controlPath, JSONObject([("cmd", .string("status"))]))
        #expect(status["hostname"]?.stringValue == "hub-01")
        #expect(status["roles"] == .array([.string("aggregator"), .string("store")]))
        #expect(status["store"]?["started"] == .bool(true))
        let echo = try ControlClient.call(path: node.controlPath, JSONObject([("cmd", .string("echo")), ("text", .string("hello"))]))
        #expect(echo["by"]?.stringValue == "aggregator")

        let group = ServiceGroup(configuration: .init(services: node.services.map { .init(service: $0) }, logger: logger))
        async let running: Void = group.run()
        await group.triggerGracefulShutdown()
        try await running
        #expect(log.all == ["start aggregator", "start store", "stop store", "stop aggregator"])
        #expect(!LocalFile.exists(node.controlPath))
        #expect(throws: ControlError.self) { try ControlClient.call(path: node.controlPath, JSONObject([("cmd", .string("status"))])) }
    }
}
