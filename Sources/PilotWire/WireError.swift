/// Everything that can be wrong with bytes from a peer. Each case says what
/// was wrong in one line; none of them carries secret material.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case unsupportedVersion(got: UInt8, supported: UInt8)
    case unknownFrameKind(UInt8)
    case frameTooLarge(length: Int, limit: Int)
    case truncated(what: String)
    case malformed(String)
    case authenticationFailed
    case replayed(counter: UInt64)
    case tooOld(counter: UInt64)
    case keyExhausted
    case peerRefused(String)

    public var description: String {
        switch self {
        case let .unsupportedVersion(got, supported):
            "peer speaks wire protocol version \(got), this pilot speaks version \(supported); upgrade the older side"
        case .unknownFrameKind(let kind): "unknown frame kind \(kind)"
        case let .frameTooLarge(length, limit): "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .truncated(let what): "truncated \(what)"
        case .malformed(let what): "malformed frame: \(what)"
        case .authenticationFailed: "frame failed authentication (altered, or encrypted under another key)"
        case .replayed(let counter): "frame \(counter) was already received (replay)"
        case .tooOld(let counter): "frame \(counter) is older than the replay window"
        case .keyExhausted: "session key used for too many frames; a new handshake is needed"
        case .peerRefused(let reason): "refused by peer: \(reason)"
        }
    }
}

/// Bounded big-endian reads from untrusted bytes.
struct WireReader {
    private let bytes: [UInt8]
    private(set) var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - index }

    mutating func read(_ count: Int, _ what: String) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(what: what) }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }

    mutating func readByte(_ what: String) throws(WireError) -> UInt8 {
        try read(1, what)[0]
    }

    mutating func readUInt64(_ what: String) throws(WireError) -> UInt64 {
        try read(8, what).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func readRest() -> [UInt8] {
        defer { index = bytes.count }
        return Array(bytes[index...])
    }
}

extension UInt64 {
    var bigEndianBytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * $0)) } }
}

extension UInt32 {
    var bigEndianBytes: [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: self >> (24 - 8 * $0)) } }
}
