public import PilotCore

/// What travels on virtual port 1002: one JSON object per stream message.
///
///     client → hub:  {"op":"sub","filter":"metrics/*"}
///                    {"op":"unsub","filter":"metrics/*"}
///                    {"op":"pub","seq":7,"topic":"metrics/cpu/web-01","payload":{...}}
///     hub → client:  {"op":"ok","of":"sub","filter":"metrics/*"}   (and "of":"unsub")
///                    {"op":"puback","seq":7}
///                    {"op":"error","seq":7,"error":"..."}        (seq when it answers a pub)
///                    {"op":"msg","topic":"...","publisher":"KEY","seq":7,"payload":{...}}
public enum BrokerRequest: Equatable, Sendable {
    case subscribe(TopicFilter)
    case unsubscribe(TopicFilter)
    case publish(sequence: UInt64, topic: Topic, payload: JSONObject)

    public static func parse(_ bytes: [UInt8], limits: EventMessage.Limits = .init()) throws(BrokerProtocolError) -> BrokerRequest {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes, limits: .init(maxBytes: limits.maxPayloadBytes + 1024, maxDepth: 34)) } catch {
            throw BrokerProtocolError(sequence: nil, reason: error.description)
        }
        switch json["op"]?.stringValue {
        case "sub", "unsub":
            guard let text = json["filter"]?.stringValue else { throw BrokerProtocolError(sequence: nil, reason: "\"filter\" must be a string") }
            let filter: TopicFilter
            do { filter = try TopicFilter(text) } catch { throw BrokerProtocolError(sequence: nil, reason: error.description) }
            return json["op"]?.stringValue == "sub" ? .subscribe(filter) : .unsubscribe(filter)
        case "pub":
            guard let number = json["seq"]?.int64Value, let sequence = UInt64(exactly: number), sequence > 0 else {
                throw BrokerProtocolError(sequence: nil, reason: "\"seq\" must be a positive whole number")
            }
            guard let topicText = json["topic"]?.stringValue else { throw BrokerProtocolError(sequence: sequence, reason: "\"topic\" must be a string") }
            let topic: Topic
            do { topic = try Topic(topicText) } catch { throw BrokerProtocolError(sequence: sequence, reason: error.description) }
            guard case .object(let payload)? = json["payload"] else {
                throw BrokerProtocolError(sequence: sequence, reason: "invalid payload: the payload must be a JSON object")
            }
            let size = JSONValue.object(payload).description.utf8.count
            guard size <= limits.maxPayloadBytes else {
                throw BrokerProtocolError(sequence: sequence, reason: EventError.payloadTooLarge(size, limit: limits.maxPayloadBytes).description)
            }
            return .publish(sequence: sequence, topic: topic, payload: payload)
        default:
            throw BrokerProtocolError(sequence: nil, reason: "unknown operation \(json["op"]?.description ?? "(none)")")
        }
    }

    public var encoded: [UInt8] {
        let object: JSONObject
        switch self {
        case .subscribe(let filter): object = JSONObject([("op", .string("sub")), ("filter", .string(filter.description))])
        case .unsubscribe(let filter): object = JSONObject([("op", .string("unsub")), ("filter", .string(filter.description))])
        case let .publish(sequence, topic, payload):
            object = JSONObject([("op", .string("pub")), ("seq", .number(Double(sequence))), ("topic", .string(topic.description)), ("payload", .object(payload))])
        }
        return Array(JSONValue.object(object).description.utf8)
    }
}

public enum BrokerReply: Equatable, Sendable {
    case subscribed(TopicFilter)
    case unsubscribed(TopicFilter)
    case published(sequence: UInt64)
    case error(sequence: UInt64?, reason: String)
    case message(EventMessage)

    public var encoded: [UInt8] {
        let object: JSONObject
        switch self {
        case .subscribed(let filter): object = JSONObject([("op", .string("ok")), ("of", .string("sub")), ("filter", .string(filter.description))])
        case .unsubscribed(let filter): object = JSONObject([("op", .string("ok")), ("of", .string("unsub")), ("filter", .string(filter.description))])
        case .published(let sequence): object = JSONObject([("op", .string("puback")), ("seq", .number(Double(sequence)))])
        case let .error(sequence, reason):
            object = JSONObject([("op", .string("error")), ("seq", sequence.map { .number(Double($0)) } ?? .null), ("error", .string(reason))])
        case .message(let message):
            object = JSONObject([
                ("op", .string("msg")), ("topic", .string(message.topic.description)), ("publisher", .string(message.publisher)),
                ("seq", .number(Double(message.sequence))), ("payload", .object(message.payload)),
            ])
        }
        return Array(JSONValue.object(object).description.utf8)
    }

    public static func parse(_ bytes: [UInt8]) throws(BrokerProtocolError) -> BrokerReply {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes, limits: .init(maxBytes: 128 * 1024, maxDepth: 34)) } catch {
            throw BrokerProtocolError(sequence: nil, reason: error.description)
        }
        let sequence = json["seq"]?.int64Value.flatMap { UInt64(exactly: $0) }
        switch json["op"]?.stringValue {
        case "ok":
            guard let text = json["filter"]?.stringValue, let filter = try? TopicFilter(text) else { break }
            return json["of"]?.stringValue == "unsub" ? .unsubscribed(filter) : .subscribed(filter)
        case "puback":
            guard let sequence else { break }
            return .published(sequence: sequence)
        case "error":
            return .error(sequence: sequence, reason: json["error"]?.stringValue ?? "unknown error")
        case "msg":
            guard let topicText = json["topic"]?.stringValue, let topic = try? Topic(topicText), let publisher = json["publisher"]?.stringValue,
                  let sequence, case .object(let payload)? = json["payload"] else { break }
            return .message(EventMessage(topic: topic, payload: payload, publisher: publisher, sequence: sequence))
        default:
            break
        }
        throw BrokerProtocolError(sequence: sequence, reason: "malformed reply from the hub")
    }
}

public struct BrokerProtocolError: Error, Equatable, CustomStringConvertible {
    public var sequence: UInt64?
    public var reason: String
    public var description: String { reason }
}

extension Broker {
    /// Handles one request from a subscriber/publisher connection (the
    /// non-durable path): the reply to send back, and who received a
    /// publication. `publisher` names the sender (its key) in messages.
    public mutating func handle(_ bytes: [UInt8], from connection: Subscriber, publisher: String,
                                limits: EventMessage.Limits = .init()) -> (reply: BrokerReply, receivers: [Subscriber]) {
        let request: BrokerRequest
        do { request = try BrokerRequest.parse(bytes, limits: limits) } catch {
            return (.error(sequence: error.sequence, reason: error.reason), [])
        }
        switch request {
        case .subscribe(let filter):
            do { try subscribe(connection, to: filter) } catch { return (.error(sequence: nil, reason: error.description), []) }
            return (.subscribed(filter), [])
        case .unsubscribe(let filter):
            unsubscribe(connection, from: filter)
            return (.unsubscribed(filter), [])
        case let .publish(sequence, topic, payload):
            let receivers = publish(EventMessage(topic: topic, payload: payload, publisher: publisher, sequence: sequence))
            return (.published(sequence: sequence), receivers)
        }
    }
}
