/// What travels inside a tunnel: messages between virtual ports.
///
///     kind u8 | source port u16 | destination port u16 | data
///
/// Kind 1 is an unreliable datagram; kind 2 a segment of a reliable,
/// ordered connection (`StreamMux`). Well-known ports follow the seed: 7 echo, 444 trust
/// handshake, 1002 event stream.
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
