/// Why a stream connection was reset, as it travels in the reset segment:
/// a code the other side acts on, and a text for people. A reset segment
/// with the `coded` flag carries `code u8 | UTF-8 reason`; one without it
/// (from an older peer) is only a reason, read as `.closed`, so nothing
/// is ever decided by matching words of a reason.
public struct StreamReset: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: UInt8, Sendable {
        /// The owner of the connection closed it (its reason says why).
        case closed = 1
        /// Nothing listens on the port.
        case portClosed = 2
        /// The peer does not trust this node for the port.
        case notTrusted = 3
        /// The peer has as many connections as it takes.
        case tooManyConnections = 4
        /// A segment for a connection the peer does not know (it restarted).
        case noSuchConnection = 5
        /// Quiet past the idle timeout.
        case idleTimeout = 6
        /// Data waited for an acknowledgement and the peer said nothing.
        case unanswered = 7

        /// A short name for counts in status.
        public var label: String {
            switch self {
            case .closed: "closed"
            case .portClosed: "port closed"
            case .notTrusted: "not trusted"
            case .tooManyConnections: "too many connections"
            case .noSuchConnection: "no such connection"
            case .idleTimeout: "idle timeout"
            case .unanswered: "unanswered"
            }
        }
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }

    /// Whether retrying cannot help: the peer answered, and said no.
    public var isRefusal: Bool { code == .notTrusted || code == .portClosed }

    /// The segment body: code, then at most 200 bytes of reason.
    var body: [UInt8] { [code.rawValue] + Array(reason.utf8.prefix(200)) }

    init(body: ArraySlice<UInt8>, coded: Bool) {
        guard coded, let first = body.first else {
            self.init(.closed, String(decoding: body, as: UTF8.self))
            return
        }
        self.init(Code(rawValue: first) ?? .closed, String(decoding: body.dropFirst(), as: UTF8.self))
    }
}
