public import PilotCore

/// One event of the stream: a topic, a JSON object payload, and the
/// publisher's identity and sequence number, which together name it for
/// duplicate elimination (at-least-once delivery resends).
public struct EventMessage: Equatable, Sendable {
    public var topic: Topic
    /// A JSON object as compact text on one line (checked by `validate`).
    public var payload: String
    /// The publisher as the hub saw it: its key (base64, from the channel,
    /// never from the message) and the epoch of its spool.
    public var publisher: String
    public var sequence: UInt64

    public init(topic: Topic, payload: String, publisher: String, sequence: UInt64) {
        self.topic = topic
        self.payload = payload
        self.publisher = publisher
        self.sequence = sequence
    }

    public struct Limits: Sendable {
        public var maxPayloadBytes = 64 * 1024
        public init() {}
    }

    /// Checks what a publisher sends: a valid topic and a JSON object within
    /// the size limit; anything else is refused with a clear reason.
    public static func validate(topic: String, payload text: String, limits: Limits = Limits()) throws(EventError) -> (Topic, String) {
        let parsedTopic: Topic
        do { parsedTopic = try Topic(topic) } catch { throw .badTopic(error.description) }
        return (parsedTopic, try validate(payload: text, limits: limits))
    }

    /// `validate(payload:)` from bytes (a line of the wire protocol).
    public static func validate(payloadBytes bytes: ArraySlice<UInt8>, limits: Limits = Limits()) throws(EventError) -> String {
        guard bytes.count <= limits.maxPayloadBytes else { throw .payloadTooLarge(bytes.count, limit: limits.maxPayloadBytes) }
        guard bytes.first == UInt8(ascii: "{") else { throw .badPayload("the payload must be a JSON object") }
        do { try JSONValue.validate(Array(bytes), limits: .init(maxBytes: limits.maxPayloadBytes, maxDepth: 32)) } catch {
            throw .badPayload(error.description)
        }
        guard !bytes.contains(where: { $0 == 0x0A || $0 == 0x0D }) else {
            return try validate(payload: String(decoding: bytes, as: UTF8.self), limits: limits) // re-encoded on one line
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Checks a payload: a JSON object within the size limit. Returns it as
    /// one line (the text itself when it has no line break, else re-encoded).
    public static func validate(payload text: String, limits: Limits = Limits()) throws(EventError) -> String {
        guard text.utf8.count <= limits.maxPayloadBytes else {
            throw .payloadTooLarge(text.utf8.count, limit: limits.maxPayloadBytes)
        }
        let value: JSONValue
        do { value = try JSONValue.parse(text, limits: .init(maxBytes: limits.maxPayloadBytes, maxDepth: 32)) } catch {
            throw .badPayload(error.description)
        }
        guard case .object = value else { throw .badPayload("the payload must be a JSON object") }
        let oneLine = !text.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D })
        return oneLine ? text : value.description
    }
}

public enum EventError: Error, Equatable, CustomStringConvertible {
    case badTopic(String)
    case badPayload(String)
    case payloadTooLarge(Int, limit: Int)
    case notTrusted

    public var description: String {
        switch self {
        case .badTopic(let reason): reason
        case .badPayload(let reason): "invalid payload: \(reason)"
        case let .payloadTooLarge(size, limit): "payload of \(size) bytes exceeds the limit of \(limit) bytes"
        case .notTrusted: "this node is not trusted by the hub (pilot handshake HUB \"why\")"
        }
    }
}

/// Remembers which (publisher, sequence) pairs a consumer has seen, so a
/// resent message is dropped: per publisher, everything up to a contiguous
/// watermark plus a bounded set above it.
public struct DuplicateFilter: Sendable {
    struct Seen: Sendable {
        var contiguous: UInt64 = 0 // every sequence <= this was seen (sequences start at 1)
        var above: Set<UInt64> = []
    }

    public let maxAbove: Int
    private var publishers: [String: Seen] = [:]

    public init(maxAbove: Int = 65_536) { self.maxAbove = maxAbove }

    /// True the first time a (publisher, sequence) is seen. A consumer
    /// joins a publisher's stream anywhere: the first sequence seen from a
    /// publisher starts its watermark.
    public mutating func isNew(publisher: String, sequence: UInt64) -> Bool {
        guard publishers[publisher] != nil else {
            publishers[publisher] = Seen(contiguous: sequence)
            return true
        }
        return Self.record(sequence, in: &publishers[publisher]!, maxAbove: maxAbove) // in place: no copy of the set
    }

    private static func record(_ sequence: UInt64, in seen: inout Seen, maxAbove: Int) -> Bool {
        if sequence <= seen.contiguous || seen.above.contains(sequence) { return false }
        if sequence == seen.contiguous + 1 {
            seen.contiguous = sequence
            while seen.above.remove(seen.contiguous + 1) != nil { seen.contiguous += 1 }
        } else {
            seen.above.insert(sequence)
            if seen.above.count > maxAbove {
                // A gap that never fills (a publisher's spool was lost): move on past it.
                let lowest = seen.above.min()!
                seen.contiguous = lowest
                seen.above.remove(lowest)
                while seen.above.remove(seen.contiguous + 1) != nil { seen.contiguous += 1 }
            }
        }
        return true
    }
}
