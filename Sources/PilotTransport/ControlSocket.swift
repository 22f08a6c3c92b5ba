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
    /// An answer may be longer than a request: `pilot peers` on a fleet of
    /// 10,000 lists about 2.5 MB.
    public static let maxAnswerBytes = 32 << 20

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
    /// Takes over a connection whose first request names a streaming command
    /// (publish, subscribe); runs on the connection's loop.
    public typealias StreamHandler = @Sendable (JSONValue, ControlStream) -> Void

    public static func start(group: any EventLoopGroup, path: String, handler: @escaping Handler,
                             streaming: [String: StreamHandler] = [:]) async throws -> any Channel {
        try LocalFile.makeDirectory(LocalFile.directoryName(path), mode: 0o700)
        let channel = try await ServerBootstrap(group: group)
            // A subscriber reading a burst: room to buffer it rather than drop.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 16 << 20))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LineHandler(handler: handler, streaming: streaming))
                }
            }
            .withBoundSocket(try bindSocket(path)).get()
        return channel
    }

    /// Binds and listens on `path` (mode 0660), replacing a stale socket
    /// file. Bound here rather than by NIO's `bind(unixDomainSocketPath:)`,
    /// whose channel unlinks the path when it closes: a node stopping after
    /// its successor bound the same path would delete the successor's
    /// socket. The owner removes the file (`SocketFile.removeIfStillOurs`).
    static func bindSocket(_ path: String) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ControlSocketBindError("control socket path \(path) is longer than \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            raw[bytes.count] = 0
        }
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlSocketBindError("cannot create the control socket: \(String(cString: strerror(errno)))") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o660) == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ControlSocketBindError("cannot listen on \(path): \(reason)")
        }
        return fd
    }

    /// Which file a bound socket is (device and inode), so that stopping
    /// removes it only if it is still this server's: a node stopping after
    /// its successor bound the same path must not delete the successor's.
    public struct SocketFile: Sendable, Equatable {
        public let path: String
        let device: UInt64
        let inode: UInt64

        /// The file at `path` now, if there is one.
        public init?(_ path: String) {
            var info = stat()
            guard lstat(path, &info) == 0 else { return nil }
            self.path = path
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }

        /// Unlinks the path if it is still this file.
        public func removeIfStillOurs() {
            if SocketFile(path) == self { unlink(path) }
        }
    }

    final class LineHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let handler: Handler
        let streaming: [String: StreamHandler]
        var buffer: [UInt8] = []
        var stream: ControlStream?

        init(handler: @escaping Handler, streaming: [String: StreamHandler]) {
            self.handler = handler
            self.streaming = streaming
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            buffer.append(contentsOf: unwrapInboundIn(data).readableBytesView)
            var start = 0
            while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                start = newline + 1
                if let stream {
                    stream.onLine?(line)
                } else {
                    respond(context: context, to: Array(line))
                }
            }
            buffer.removeFirst(start)
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
            if let command = request["cmd"]?.stringValue, let takeOver = streaming[command] {
                let stream = ControlStream(channel: context.channel)
                self.stream = stream
                takeOver(request, stream)
                return
            }
            let handler = self.handler
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask { await handler(request) }.whenSuccess { response in
                bound.value.0.write(context: bound.value.1, response)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            stream?.closed()
            stream = nil
            context.fireChannelInactive()
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { stream?.onWritable?() }
            context.fireChannelWritabilityChanged()
        }

        private func write(context: ChannelHandlerContext, _ response: JSONValue) {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response.description + "\n")), promise: nil)
        }
    }
}

/// A control connection taken over by a streaming command: lines both ways
/// until either side closes. Used on the connection's loop.
public final class ControlStream: @unchecked Sendable {
    let channel: any Channel
    /// Each further line from the client (without its line feed).
    public var onLine: ((ArraySlice<UInt8>) -> Void)?
    /// Once, when the client has gone.
    public var onClose: (() -> Void)?
    /// When the client has read enough of what was written to take more.
    public var onWritable: (() -> Void)?
    public private(set) var isClosed = false

    init(channel: any Channel) { self.channel = channel }

    public var eventLoop: any EventLoop { channel.eventLoop }
    public var isWritable: Bool { channel.isWritable }

    /// Writes bytes as they are (the caller ends lines with a line feed).
    public func send(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    public func send(_ response: JSONValue) { send(Array((response.description + "\n").utf8)) }

    public func close() {
        guard !isClosed else { return }
        channel.close(promise: nil)
    }

    func closed() {
        guard !isClosed else { return }
        isClosed = true
        onLine = nil
        onWritable = nil
        onClose?()
        onClose = nil
    }
}

/// The CLI side of a streaming command: a blocking connection that sends
/// the request, then lines both ways.
public final class ControlConnection {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    public let path: String

    public init(path: String, _ request: JSONObject, readTimeoutSeconds: Int = 0) throws(ControlError) {
        self.path = path
        fd = try ControlClient.connect(path: path, timeoutSeconds: readTimeoutSeconds)
        var object = JSONObject([("v", .number(Double(ControlSocket.version)))])
        for member in request { object[member.key] = member.value }
        do { try write(Array((JSONValue.object(object).description + "\n").utf8)) } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    public func write(_ bytes: [UInt8]) throws(ControlError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .unreachable("the node closed the control connection (\(String(cString: strerror(errno))))") }
            sent += n
        }
    }

    /// The next line (without its line feed); nil at the end of the stream.
    /// Throws on a read timeout or error.
    public func readLine(maxBytes: Int = ControlSocket.maxLineBytes) throws(ControlError) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                defer { start = newline + 1 }
                return buffer[start..<newline]
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            guard buffer.count <= maxBytes else { throw .unreachable("a line from the node is longer than \(maxBytes) bytes") }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n == 0 { return nil }
            guard n > 0 else {
                throw errno == EAGAIN || errno == EWOULDBLOCK ? .timedOut : .unreachable("cannot read from the node: \(String(cString: strerror(errno)))")
            }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// Whether a line or the end of the stream can be read within `milliseconds`.
    public func waitReadable(milliseconds: Int32) -> Bool {
        if buffer[start...].contains(0x0A) { return true }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, milliseconds) > 0
    }

    /// Says the request is complete (the node sees the end of input).
    public func finishWriting() { shutdown(fd, Int32(SHUT_WR)) }
}

/// The CLI side: one blocking request/response over the control socket.
public enum ControlClient {
    static func connect(path: String, timeoutSeconds: Int) throws(ControlError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("cannot create a socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .unreachable("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        if timeoutSeconds > 0 { setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            let reason = String(cString: strerror(code))
            close(fd)
            // The node runs, as another user: say so, not that it is not running.
            if code == EACCES || code == EPERM { throw .permissionDenied(path: path) }
            throw .notRunning(path: path, reason: reason)
        }
        return fd
    }

    public static func call(path: String, _ request: JSONObject, timeoutSeconds: Int = 20) throws(ControlError) -> JSONValue {
        var object = JSONObject([("v", .number(Double(ControlSocket.version)))])
        for member in request { object[member.key] = member.value }
        let fd = try connect(path: path, timeoutSeconds: timeoutSeconds)
        defer { close(fd) }
        let line = Array((JSONValue.object(object).description + "\n").utf8)
        var sent = 0
        while sent < line.count {
            let n = line[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw .unreachable("cannot write to \(path): \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var complete = false
        while !complete {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                throw .unreachable(n == 0 ? "the node closed the control socket without answering" : "no answer from the node within \(timeoutSeconds) s")
            }
            complete = chunk[..<n].contains(UInt8(ascii: "\n")) // only the new bytes: a long answer is not rescanned
            response.append(contentsOf: chunk[..<n])
            guard response.count <= ControlSocket.maxAnswerBytes else { throw .unreachable("answer longer than \(ControlSocket.maxAnswerBytes) bytes") }
        }
        let text = Array(response.prefix { $0 != UInt8(ascii: "\n") })
        do { return try JSONValue.parse(text, limits: .init(maxBytes: ControlSocket.maxAnswerBytes, maxDepth: 16)) } catch {
            throw .unreachable("unreadable answer from the node: \(error)")
        }
    }
}

public enum ControlError: Error, CustomStringConvertible {
    case notRunning(path: String, reason: String)
    case permissionDenied(path: String)
    case unreachable(String)
    case timedOut

    public var description: String {
        switch self {
        case let .notRunning(path, reason): "no pilot node is running here (\(path): \(reason))"
        case .permissionDenied(let path): "permission denied for the node's control socket \(path): run this as the user the node runs as (or with sudo)"
        case .unreachable(let reason): reason
        case .timedOut: "no answer from the node in time"
        }
    }
}

public struct ControlSocketBindError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
