public import PilotCore

/// A message as an in-process subscriber gets it: the value itself, not a
/// line of the wire protocol, with its payload's JSON parsed at most once
/// however many subscribers of the process read it.
public struct EventDelivery: Sendable {
    /// Its id in the hub's log (what a durable subscriber acknowledges).
    public let id: UInt64
    public let message: EventMessage
    private let parsed: ParsedPayload

    public init(id: UInt64, message: EventMessage) {
        self.id = id
        self.message = message
        parsed = ParsedPayload()
    }

    public var topic: Topic { message.topic }
    public var payload: String { message.payload }
    public var publisher: String { message.publisher }
    public var sequence: UInt64 { message.sequence }

    /// The payload as a JSON object (nil if it is not one), parsed on the
    /// first call and shared by every copy of this delivery.
    public var object: JSONObject? { parsed.object(of: message.payload) }
}

/// The parse of one payload, shared by the copies of a delivery. Used on
/// one thread (the node's loop), like the hub that makes them.
final class ParsedPayload: @unchecked Sendable {
    private var done = false
    private var value: JSONObject?

    func object(of payload: String) -> JSONObject? {
        if !done {
            done = true
            if case .object(let object)? = try? JSONValue.parse(payload) { value = object }
        }
        return value
    }
}
