/// Framing of the encrypted channel over a byte stream (the registry's TCP):
///
///     version u8 | kind u8 | length u32 (big-endian) | payload
///
/// The version comes first in every frame so that mixed versions refuse
/// each other plainly instead of misparsing. Datagram carriers (tunnels)
/// use the same version and kind bytes without the length.
public struct StreamFrame: Equatable, Sendable {
    public static let version: UInt8 = 1
    public static let headerBytes = 6

    public enum Kind: UInt8, Sendable {
        case handshakeInitiation = 1
        case handshakeResponse = 2
        case handshakeFinish = 3
        case transport = 4
        /// A transport-level refusal (version, size, limits, timeouts) as a
        /// short UTF-8 reason, sent just before closing, like a TLS alert.
        /// It never carries application data.
        case error = 5
    }

    public var kind: Kind
    public var payload: [UInt8]

    public init(_ kind: Kind, _ payload: [UInt8]) {
        self.kind = kind
        self.payload = payload
    }

    public var encoded: [UInt8] {
        [Self.version, kind.rawValue] + UInt32(payload.count).bigEndianBytes + payload
    }
}

/// Cuts frames out of a byte stream: feed bytes as they arrive, take frames
/// while there are whole ones. Refuses a frame longer than `maxPayload`
/// as soon as its header arrives, before buffering any of it.
public struct StreamFrameDecoder: Sendable {
    public let maxPayload: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maxPayload: Int) {
        self.maxPayload = maxPayload
    }

    public var bufferedBytes: Int { buffer.count - start }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, nil when more bytes are needed, or an error
    /// after which the stream cannot be trusted and must be closed.
    public mutating func next() throws(WireError) -> StreamFrame? {
        guard bufferedBytes >= StreamFrame.headerBytes else {
            if bufferedBytes >= 1, buffer[start] != StreamFrame.version {
                throw .unsupportedVersion(got: buffer[start], supported: StreamFrame.version)
            }
            return nil
        }
        let version = buffer[start]
        guard version == StreamFrame.version else { throw .unsupportedVersion(got: version, supported: StreamFrame.version) }
        guard let kind = StreamFrame.Kind(rawValue: buffer[start + 1]) else { throw .unknownFrameKind(buffer[start + 1]) }
        let length = buffer[(start + 2)..<(start + 6)].reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxPayload else { throw .frameTooLarge(length: length, limit: maxPayload) }
        guard bufferedBytes >= StreamFrame.headerBytes + length else { return nil }
        let payloadStart = start + StreamFrame.headerBytes
        let frame = StreamFrame(kind, Array(buffer[payloadStart..<(payloadStart + length)]))
        start = payloadStart + length
        if start == buffer.count {
            // Free the buffer between frames: thousands of idle connections
            // should not each hold their largest frame's worth of memory.
            buffer.removeAll(keepingCapacity: false)
            start = 0
        }
        return frame
    }
}
