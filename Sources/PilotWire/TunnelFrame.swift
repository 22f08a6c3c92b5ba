internal import PilotCrypto

/// Tunnel datagrams (one UDP payload each, never more than 1,280 bytes):
///
///     version u8 | kind u8 | fields
///     initiation:   sender index u32 | handshake message (IK, first) | mac1 16 | mac2 16
///     response:     sender index u32 | receiver index u32 | handshake message (IK, second)
///     cookie reply: receiver index u32 | nonce 12 | sealed cookie 16 + tag 16
///     transport:    receiver index u32 | counter u64 | ciphertext + tag
///
/// An initiation's `message` ends in its MACs (`HandshakeCookies` seals
/// them on); the router checks them on the raw datagram before any
/// Diffie-Hellman and hands the handshake the rest. Version 2 added them
/// and the cookie reply; version 3 the overlay bundle (`OverlayMessage.pack`),
/// which a version-2 node would have dropped without a word.
///
/// Indices name sessions, as in WireGuard, so a session survives a change
/// of path (direct, relayed, a new NAT mapping) without a new handshake.
public enum TunnelFrame: Equatable, Sendable {
    case initiation(senderIndex: UInt32, message: [UInt8])
    case response(senderIndex: UInt32, receiverIndex: UInt32, message: [UInt8])
    case cookieReply(receiverIndex: UInt32, nonce: [UInt8], sealed: [UInt8])
    case transport(receiverIndex: UInt32, sealed: [UInt8])

    public static let version: UInt8 = 3
    public static let maxDatagramBytes = 1280

    enum Kind: UInt8 {
        case initiation = 1
        case response = 2
        case cookieReply = 3
        case transport = 4
    }

    public static func parse(_ datagram: [UInt8]) throws(WireError) -> TunnelFrame {
        var reader = WireReader(datagram)
        let version = try reader.readByte("tunnel datagram header")
        guard version == Self.version else { throw .unsupportedVersion(got: version, supported: Self.version) }
        guard datagram.count <= maxDatagramBytes else { throw .frameTooLarge(length: datagram.count, limit: maxDatagramBytes) }
        let kindByte = try reader.readByte("tunnel datagram header")
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownFrameKind(kindByte) }
        switch kind {
        case .initiation:
            let sender = try reader.readUInt32("session index")
            guard reader.remaining > HandshakeCookies.trailerBytes else { throw .truncated(what: "handshake initiation") }
            return .initiation(senderIndex: sender, message: reader.readRest())
        case .response:
            let sender = try reader.readUInt32("session index")
            let receiver = try reader.readUInt32("session index")
            return .response(senderIndex: sender, receiverIndex: receiver, message: reader.readRest())
        case .cookieReply:
            let receiver = try reader.readUInt32("session index")
            let nonce = try reader.read(HandshakeCookies.nonceBytes, "cookie nonce")
            let sealed = try reader.read(HandshakeCookies.macBytes + AEADAlgorithm.tagByteCount, "sealed cookie")
            guard reader.remaining == 0 else { throw .malformed("cookie reply with \(reader.remaining) bytes too many") }
            return .cookieReply(receiverIndex: receiver, nonce: nonce, sealed: sealed)
        case .transport:
            let receiver = try reader.readUInt32("session index")
            guard reader.remaining >= 8 + 16 else { throw .truncated(what: "transport datagram") }
            return .transport(receiverIndex: receiver, sealed: reader.readRest())
        }
    }

    public var encoded: [UInt8] {
        switch self {
        case let .initiation(sender, message):
            [Self.version, Kind.initiation.rawValue] + sender.bigEndianBytes + message
        case let .response(sender, receiver, message):
            [Self.version, Kind.response.rawValue] + sender.bigEndianBytes + receiver.bigEndianBytes + message
        case let .cookieReply(receiver, nonce, sealed):
            [Self.version, Kind.cookieReply.rawValue] + receiver.bigEndianBytes + nonce + sealed
        case let .transport(receiver, sealed):
            [Self.version, Kind.transport.rawValue] + receiver.bigEndianBytes + sealed
        }
    }

    /// Bytes a transport datagram adds around its plaintext.
    public static let transportOverhead = 2 + 4 + 8 + 16
}

extension WireReader {
    mutating func readUInt32(_ what: String) throws(WireError) -> UInt32 {
        try read(4, what).reduce(0) { $0 << 8 | UInt32($1) }
    }
}
