#if canImport(Glibc)
internal import Glibc
#endif
public import NIOCore
internal import NIOPosix
public import PilotCore
internal import PilotCrypto

/// The local control socket every CLI verb talks to: a Unix socket (mode
/// 0660) in the state directory, one JSON request a line and one JSON
/// response a line, each carrying the protocol version `"v":1`.
public enum ControlSocket {
    public static let version = 1
    public static let maxLineBytes = 256 * 1024

    /// `STATE/NAME`, or a short path under /run/pilot (root) or
    /// /tmp/pilot-UID when that would pass the 107-byte limit of Unix
    /// socket paths.
    public static func path(stateDirectory: String, name: String = "pilot.sock") -> String {
        let direct = stateDirectory + "/" + name
        if direct.utf8.count <= 107 { return direct }
        let digest = Hex.encode(Array(SHA256.hash(Array(direct.utf8)).prefix(8)))
        let base = getuid() == 0 ? "/run/pilot" : "/tmp/pilot-\(getuid())"
        return "\(base)/\(digest).sock"
    }

    public static func ok(_ body: JSONObject = JSONObject()) -> JSONValue {
        var object = JSONObject([("v", .number(Double(version))), ("ok", .bool(true))])
        for member in body { object[member.key] = member.value }
        return .object(object)
    }

    public static func failure(_ message: String) -> JSONValue {
        .object(JSONObject([("v", .number(Double(version))), ("ok", .bool(false)), ("error", .string(message))]))
    }
}

/// Serves the control socket. The handler runs for each request line and
/// completes on any loop; responses go back in order per connection.
public enum ControlServer {
    public typealias Handler = @Sendable (JSONValue) async -> JSONValue

    public static func start(group: any EventLoopGroup, path: String, handler: @escaping Handler) async throws -> any Channel {
        try LocalFile.makeDirectory(LocalFile.directoryName(path), mode: 0o700)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(LineHandler(handler: handler)) }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        chmod(path, 0o660)
        return channel
    }

    final class LineHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let handler: Handler
        var buffer: [UInt8] = []

        init(handler: @escaping Handler) { self.handler = handler }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            buffer.append(contentsOf: unwrapInboundIn(data).readableBytesView)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                respond(context: context, to: line)
            }
            if buffer.count > ControlSocket.maxLineBytes {
                write(context: context, ControlSocket.failure("request longer than \(ControlSocket.maxLineBytes) bytes"))
                context.close(promise: nil)
            }
        }

        private func respond(context: ChannelHandlerContext, to line: [UInt8]) {
            let request: JSONValue
            do { request = try JSONValue.parse(line, limits: .init(maxBytes: ControlSocket.maxLineBytes, maxDepth: 16)) } catch {
                return write(context: context, ControlSocket.failure("bad control request: \(error)"))
            }
            guard request["v"]?.doubleValue == Double(ControlSocket.version) else {
                return write(context: context, ControlSocket.failure(
                    "control protocol version \(request["v"]?.description ?? "(none)") is not \(ControlSocket.version); use the pilot binary that runs this node"))
            }
            let handler = self.handler
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask { await handler(request) }.whenSuccess { response in
                bound.value.0.write(context: bound.value.1, response)
            }
        }

        private func write(context: ChannelHandlerContext, _ response: JSONValue) {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response.description + "\n")), promise: nil)
        }
    }
}

/// The CLI side: one blocking request/response over the control socket.
public enum ControlClient {
    public static func call(path: String, _ request: JSONObject, timeoutSeconds: Int = 20) throws(ControlError) -> JSONValue {
        var object = JSONObject([("v", .number(Double(ControlSocket.version)))])
        for member in request { object[member.key] = member.value }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("cannot create a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .unreachable("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw .notRunning(path: path, reason: String(cString: strerror(errno))) }
        let line = Array((JSONValue.object(object).description + "\n").utf8)
        var sent = 0
        while sent < line.count {
            let n = line[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw .unreachable("cannot write to \(path): \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while !response.contains(UInt8(ascii: "\n")) {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                throw .unreachable(n == 0 ? "the node closed the control socket without answering" : "no answer from the node within \(timeoutSeconds) s")
            }
            response.append(contentsOf: chunk[..<n])
            guard response.count <= ControlSocket.maxLineBytes else { throw .unreachable("answer longer than \(ControlSocket.maxLineBytes) bytes") }
        }
        let text = Array(response.prefix { $0 != UInt8(ascii: "\n") })
        do { return try JSONValue.parse(text, limits: .init(maxBytes: ControlSocket.maxLineBytes, maxDepth: 16)) } catch {
            throw .unreachable("unreadable answer from the node: \(error)")
        }
    }
}

public enum ControlError: Error, CustomStringConvertible {
    case notRunning(path: String, reason: String)
    case unreachable(String)

    public var description: String {
        switch self {
        case let .notRunning(path, reason): "no pilot node is running here (\(path): \(reason))"
        case .unreachable(let reason): reason
        }
    }
}
