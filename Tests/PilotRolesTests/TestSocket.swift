import Glibc
import PilotCore
import PilotCrypto
import PilotRegistry
import PilotWire

/// A blocking TCP client for poking a server with exact bytes.
final class TestSocket {
    let fd: Int32
    var decoder = StreamFrameDecoder(maxPayload: 1 << 20)

    init(host: String, port: UInt16, sourceAddress: String? = nil, timeoutSeconds: Int = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let sourceAddress {
            var local = Self.address(sourceAddress, 0)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard bound == 0 else { throw TestFailure("bind \(sourceAddress): \(errno)") }
        }
        var remote = Self.address(host, port)
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw TestFailure("connect \(host):\(port): \(errno)") }
    }

    deinit { close(fd) }

    static func address(_ host: String, _ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        return address
    }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// The next frame, or nil when the peer closed (or the timeout passed).
    func receiveFrame() throws -> StreamFrame? {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let frame = try decoder.next() { return frame }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            decoder.feed(buffer[..<n])
        }
    }

    /// True once the peer has closed the connection.
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }
}

/// A registry client at the protocol level, to send requests that a real
/// node never would.
final class RawRegistryClient {
    let socket: TestSocket
    var channel: SecureChannel
    let key: SigningKey
    var nextID: UInt64 = 1

    init(port: UInt16, key: SigningKey = .generate(), sourceAddress: String? = nil) throws {
        self.key = key
        socket = try TestSocket(host: "127.0.0.1", port: port, sourceAddress: sourceAddress)
        let (channel, first) = try SecureChannel.initiator(identity: key, responder: nil, preference: .chacha20poly1305)
        self.channel = channel
        socket.send(first.encoded)
        while !self.channel.isEstablished {
            guard let frame = try socket.receiveFrame() else { throw TestFailure("registry closed during the handshake") }
            switch try self.channel.receive(frame) {
            case .send(let frames), .established(let frames): frames.forEach { socket.send($0.encoded) }
            case .message: throw TestFailure("message during handshake")
            }
        }
    }

    func sendRaw(_ message: [UInt8]) throws {
        socket.send(try channel.seal(message).encoded)
    }

    func reply() throws -> JSONValue {
        guard let frame = try socket.receiveFrame() else { throw TestFailure("no reply: connection closed") }
        guard case .message(let message) = try channel.receive(frame) else { throw TestFailure("unexpected frame") }
        return try JSONValue.parse(message)
    }

    func request(_ operation: RegistryOperation, _ body: JSONObject = JSONObject(), now: Int64? = nil, signer: SigningKey? = nil) throws -> JSONValue {
        let bytes = RegistryProtocol.request(id: nextID, operation, body: body, signer: signer ?? key, now: now ?? Self.now())
        nextID += 1
        try sendRaw(bytes)
        return try response()
    }

    /// The next answer to a request, skipping pushed presence events.
    func response() throws -> JSONValue {
        while true {
            let message = try reply()
            if message["event"] == nil { return message }
        }
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
