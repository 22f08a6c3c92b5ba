/// What travels inside a tunnel: messages between virtual ports.
///
///     kind u8 | source port u16 | destination port u16 | data
///
/// Kind 1 is an unreliable datagram; kind 2 a segment of a reliable,
/// ordered connection (`StreamMux`). Well-known ports follow the seed: 7 echo, 444 trust
/// handshake, 1002 event stream.
///
/// Several messages for one peer that fit in one tunnel datagram travel
/// as a bundle (tunnel version 3): one seal, one system call, one
/// datagram for what would otherwise be many small ones:
///
///     3 | (length u16 | overlay message)+
public struct OverlayMessage: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case datagram = 1
        /// A segment of a reliable connection (see `StreamMux`).
        case stream = 2
    }

    public static let echoPort: UInt16 = 7
    /// Swallows stream data (for throughput measurements).
    public static let discardPort: UInt16 = 9
    public static let trustPort: UInt16 = 444
    public static let eventStreamPort: UInt16 = 1002
    public static let headerBytes = 5
    /// Largest datagram data that keeps the tunnel datagram within 1,280 bytes.
    public static let maxDatagramData = TunnelFrame.maxDatagramBytes - TunnelFrame.transportOverhead - headerBytes

    public var kind: Kind
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var data: [UInt8]

    public init(kind: Kind = .datagram, sourcePort: UInt16, destinationPort: UInt16, data: [UInt8]) {
        self.kind = kind
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.data = data
    }

    public static func parse(_ payload: [UInt8]) throws(WireError) -> OverlayMessage {
        guard payload.count >= headerBytes else { throw .truncated(what: "overlay message") }
        guard let kind = Kind(rawValue: payload[0]) else { throw .malformed("unknown overlay message kind \(payload[0])") }
        return OverlayMessage(kind: kind, sourcePort: UInt16(payload[1]) << 8 | UInt16(payload[2]),
                              destinationPort: UInt16(payload[3]) << 8 | UInt16(payload[4]), data: Array(payload[headerBytes...]))
    }

    public var encoded: [UInt8] {
        [kind.rawValue, UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)] + data
    }
}

extension OverlayMessage {
    static let bundleKind: UInt8 = 3
    /// Largest tunnel payload: what keeps the datagram within 1,280 bytes.
    public static let maxPayloadBytes = TunnelFrame.maxDatagramBytes - TunnelFrame.transportOverhead

    /// The overlay messages of one tunnel payload: one message, or every
    /// message of a bundle, in order. A bundle holds at least one message,
    /// each at least a header long, no bundles, no trailing bytes.
    public static func parseAll(_ payload: [UInt8]) throws(WireError) -> [OverlayMessage] {
        guard payload.first == bundleKind else { return [try parse(payload)] }
        var messages: [OverlayMessage] = []
        var at = 1
        while at < payload.count {
            guard payload.count - at >= 2 else { throw .truncated(what: "overlay bundle length") }
            let length = Int(payload[at]) << 8 | Int(payload[at + 1])
            at += 2
            guard length >= headerBytes else { throw .malformed("overlay bundle entry of \(length) bytes, shorter than a message header") }
            guard payload.count - at >= length else { throw .truncated(what: "overlay bundle entry") }
            guard payload[at] != bundleKind else { throw .malformed("overlay bundle inside a bundle") }
            messages.append(try parse(Array(payload[at..<at + length])))
            at += length
        }
        guard !messages.isEmpty else { throw .malformed("empty overlay bundle") }
        return messages
    }

    /// Tunnel payloads for encoded overlay messages to one peer, in order:
    /// consecutive messages that fit together within `limit` bytes share a
    /// bundle; a message that fits with no other goes alone, unchanged.
    public static func pack(_ encoded: [[UInt8]], limit: Int = maxPayloadBytes) -> [[UInt8]] {
        guard encoded.count > 1 else { return encoded }
        var payloads: [[UInt8]] = []
        var index = 0
        while index < encoded.count {
            // How many of the next messages fit in one bundle.
            var size = 1
            var end = index
            while end < encoded.count, size + 2 + encoded[end].count <= limit { size += 2 + encoded[end].count; end += 1 }
            if end - index < 2 {
                payloads.append(encoded[index])
                index += 1
                continue
            }
            var bundle: [UInt8] = []
            bundle.reserveCapacity(size)
            bundle.append(bundleKind)
            for message in encoded[index..<end] {
                bundle.append(UInt8(message.count >> 8))
                bundle.append(UInt8(message.count & 0xFF))
                bundle.append(contentsOf: message)
            }
            payloads.append(bundle)
            index = end
        }
        return payloads
    }
}
