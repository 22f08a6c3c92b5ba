public import PilotCore

/// What travels on virtual port 1002, inside the encrypted tunnel stream:
/// lines of text, many to one stream message (so small events share
/// datagrams). Fields are separated by one space; topics, filters, keys
/// and numbers have none, and the payload, a one-line JSON object, is last.
///
///     client → hub:  VERSION <n>                      (first; the hub answers VERSION <n> or refuses)
///                    EPOCH <hex>                      (names this publisher's spool)
///                    SUB <filter> [<durable name>]
///                    UNSUB <filter>
///                    PUB <seq> <topic> <payload>      (seq 0: fire and forget, no ack)
///                    ACK <id>                         (a durable subscriber has all up to id)
///                    RESUME <id>                      (after its SUBs: a plain subscriber back after a
///                                                      lost connection had everything up to id)
///                    PING
///     hub → client:  VERSION <n>                      (the first reply: this hub speaks n)
///                    OK SUB <filter> | OK UNSUB <filter>
///                    PUBACK <seq>                     (every publication up to seq is stored)
///                    ERR <seq> <reason>               (seq 0: not about a publication)
///                    MSG <id> <publisher> <seq> <topic> <payload>
///                    DROP <count>                     (messages this subscriber lost)
///                    POSITION <id>                    (a plain subscription's live messages follow id)
///                    PONG
public enum EventRequest: Equatable, Sendable {
    /// The protocol this code speaks. 2: stream resets carry a code;
    /// both sides say their version first, so mixed versions refuse each
    /// other by name instead of misreading.
    public static let protocolVersion = 2

    case version(Int)
    case epoch(String)
    case subscribe(TopicFilter, durable: String?)
    case unsubscribe(TopicFilter)
    case publish(sequence: UInt64, topic: Topic, payload: String)
    case ack(UInt64)
    /// A plain subscriber that lost its connection had every message it
    /// asked for up to this id: the hub answers with `DROP` for what it
    /// missed since. Sent after the `SUB` lines, so that a hub that does
    /// not know it (an `ERR` once the filters are confirmed) costs nothing.
    case resume(after: UInt64)
    case ping

    public var line: String {
        switch self {
        case .version(let version): "VERSION \(version)"
        case .epoch(let epoch): "EPOCH \(epoch)"
        case let .subscribe(filter, durable): "SUB \(filter)" + (durable.map { " " + $0 } ?? "")
        case .unsubscribe(let filter): "UNSUB \(filter)"
        case let .publish(sequence, topic, payload): "PUB \(sequence) \(topic) \(payload)"
        case .ack(let id): "ACK \(id)"
        case .resume(let id): "RESUME \(id)"
        case .ping: "PING"
        }
    }

    /// Parses one request line. A publication's payload is checked against
    /// `limits` here, at the hub, whatever the publisher checked.
    public static func parse(_ line: ArraySlice<UInt8>, limits: EventMessage.Limits = .init()) throws(EventWireError) -> EventRequest {
        var topics = TopicCache()
        return try parse(line, limits: limits, topics: &topics)
    }

    /// `parse`, remembering the last topic: publishers mostly repeat theirs.
    public static func parse(_ line: ArraySlice<UInt8>, limits: EventMessage.Limits, topics: inout TopicCache) throws(EventWireError) -> EventRequest {
        if line.starts(with: publishPrefix) { return try parsePublish(line.dropFirst(4), limits: limits, topics: &topics) }
        var fields = EventFields(line)
        switch fields.word() {
        case "VERSION":
            guard let version = Int(fields.rest()), (1...999).contains(version) else { throw EventWireError(sequence: 0, "VERSION needs a number") }
            return .version(version)
        case "EPOCH":
            let epoch = fields.rest()
            guard (1...32).contains(epoch.count), epoch.allSatisfy(\.isHexDigit) else { throw EventWireError(sequence: 0, "EPOCH needs 1 to 32 hex digits") }
            return .epoch(epoch)
        case "SUB":
            let filter = try fields.filter()
            let durable = fields.rest()
            if durable.isEmpty { return .subscribe(filter, durable: nil) }
            do { try DurableName.validate(durable) } catch { throw EventWireError(sequence: 0, error.description) }
            return .subscribe(filter, durable: durable)
        case "UNSUB":
            return .unsubscribe(try fields.filter())
        case "PUB":
            guard let sequence = UInt64(fields.word()) else { throw EventWireError(sequence: 0, "PUB needs a sequence number") }
            let topic: Topic
            do { topic = try Topic(fields.word()) } catch { throw EventWireError(sequence: sequence, error.description) }
            let payload: String
            do { payload = try EventMessage.validate(payload: fields.rest(), limits: limits) } catch {
                throw EventWireError(sequence: sequence, error.description)
            }
            return .publish(sequence: sequence, topic: topic, payload: payload)
        case "ACK":
            guard let id = UInt64(fields.rest()) else { throw EventWireError(sequence: 0, "ACK needs a message id") }
            return .ack(id)
        case "RESUME":
            guard let id = UInt64(fields.rest()) else { throw EventWireError(sequence: 0, "RESUME needs a message id") }
            return .resume(after: id)
        case "PING":
            return .ping
        case let other:
            throw EventWireError(sequence: 0, "unknown request '\(other.prefix(20))'")
        }
    }
}

extension EventRequest {
    static let publishPrefix = Array("PUB ".utf8)

    /// A `PUB seq topic payload` line (without its line feed) appended to
    /// bytes, for a spool that sends thousands at once; `topic` and
    /// `payload` were checked when they were spooled.
    public static func appendPublish(sequence: UInt64, topic: String, payload: String, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: publishPrefix)
        EventReply.appendDecimal(sequence, to: &bytes)
        bytes.append(0x20)
        bytes.append(contentsOf: topic.utf8)
        bytes.append(0x20)
        bytes.append(contentsOf: payload.utf8)
    }

    /// `PUB seq topic payload`, the hot path, read from the bytes.
    static func parsePublish(_ rest: ArraySlice<UInt8>, limits: EventMessage.Limits, topics: inout TopicCache) throws(EventWireError) -> EventRequest {
        var index = rest.startIndex
        var sequence: UInt64 = 0
        while index < rest.endIndex, rest[index] != 0x20 {
            let digit = rest[index] &- 0x30
            guard digit < 10, index - rest.startIndex < 19 else { throw EventWireError(sequence: 0, "PUB needs a sequence number") }
            sequence = sequence * 10 + UInt64(digit)
            index += 1
        }
        guard index > rest.startIndex, index < rest.endIndex else { throw EventWireError(sequence: 0, "PUB needs a sequence number") }
        let topicStart = index + 1
        guard let topicEnd = rest[topicStart...].firstIndex(of: 0x20) else { throw EventWireError(sequence: sequence, "PUB needs a topic and a payload") }
        let topic: Topic
        do { topic = try topics.topic(rest[topicStart..<topicEnd]) } catch {
            throw EventWireError(sequence: sequence, error.description)
        }
        var payloadBytes = rest[(topicEnd + 1)...]
        if payloadBytes.last == 0x0D { payloadBytes = payloadBytes.dropLast() }
        let payload: String
        do { payload = try EventMessage.validate(payloadBytes: payloadBytes, limits: limits) } catch {
            throw EventWireError(sequence: sequence, error.description)
        }
        return .publish(sequence: sequence, topic: topic, payload: payload)
    }
}

/// The last topic parsed, kept with its bytes.
public struct TopicCache: Sendable {
    private var bytes: [UInt8] = []
    private var last: Topic?
    public init() {}

    public mutating func topic(_ text: ArraySlice<UInt8>) throws(ParseError) -> Topic {
        if let last, text.elementsEqual(bytes) { return last }
        let topic = try Topic(String(decoding: text, as: UTF8.self))
        bytes = Array(text)
        last = topic
        return topic
    }
}

public enum EventReply: Equatable, Sendable {
    case version(Int)
    case subscribed(TopicFilter)
    case unsubscribed(TopicFilter)
    case published(upTo: UInt64)
    case error(sequence: UInt64, reason: String)
    case message(id: UInt64, EventMessage)
    case dropped(Int)
    /// A plain subscription's live messages are those after this id: the
    /// subscriber's position before any message came (what `RESUME` names).
    case position(UInt64)
    case pong

    public var line: String {
        switch self {
        case .version(let version): "VERSION \(version)"
        case .subscribed(let filter): "OK SUB \(filter)"
        case .unsubscribed(let filter): "OK UNSUB \(filter)"
        case .published(let sequence): "PUBACK \(sequence)"
        case let .error(sequence, reason): "ERR \(sequence) \(Self.printable(reason))"
        case let .message(id, message): Self.messageLine(id: id, message)
        case .dropped(let count): "DROP \(count)"
        case .position(let id): "POSITION \(id)"
        case .pong: "PONG"
        }
    }

    /// A reason as it can travel on one line: without control characters.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }

    public static func messageLine(id: UInt64, _ message: EventMessage) -> String {
        String(decoding: messageBytes(id: id, message), as: UTF8.self)
    }

    /// The MSG line as bytes, built without string interpolation (the hub
    /// makes one per message).
    public static func messageBytes(id: UInt64, _ message: EventMessage) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(32 + message.publisher.utf8.count + Topic.maxLength + message.payload.utf8.count)
        line.append(contentsOf: "MSG ".utf8)
        appendDecimal(id, to: &line)
        line.append(0x20)
        line.append(contentsOf: message.publisher.utf8)
        line.append(0x20)
        appendDecimal(message.sequence, to: &line)
        line.append(0x20)
        for (index, level) in message.topic.levels.enumerated() {
            if index > 0 { line.append(0x2F) }
            line.append(contentsOf: level.utf8)
        }
        line.append(0x20)
        line.append(contentsOf: message.payload.utf8)
        return line
    }

    static func appendDecimal(_ value: UInt64, to line: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(truncatingIfNeeded: rest % 10) + 0x30
                rest /= 10
                count += 1
            } while rest > 0
            line.append(contentsOf: buffer[(20 - count)...])
        }
    }

    /// Parses one reply line. The payload of a message is passed on as the
    /// hub stored it (the hub checked it); its framing is checked here.
    public static func parse(_ line: ArraySlice<UInt8>) throws(EventWireError) -> EventReply {
        var fields = EventFields(line)
        switch fields.word() {
        case "VERSION":
            guard let version = Int(fields.rest()) else { break }
            return .version(version)
        case "OK":
            let of = fields.word()
            let filter = try fields.filter()
            return of == "UNSUB" ? .unsubscribed(filter) : .subscribed(filter)
        case "PUBACK":
            guard let sequence = UInt64(fields.rest()) else { break }
            return .published(upTo: sequence)
        case "ERR":
            guard let sequence = UInt64(fields.word()) else { break }
            return .error(sequence: sequence, reason: printable(fields.rest()))
        case "MSG":
            guard let fields = MessageLine(line), let topic = try? Topic(String(decoding: fields.topic, as: UTF8.self)),
                  fields.payload.first == UInt8(ascii: "{"), fields.payload.last == UInt8(ascii: "}") else { break }
            return .message(id: fields.id, EventMessage(topic: topic, payload: String(decoding: fields.payload, as: UTF8.self),
                                                        publisher: String(decoding: fields.publisher, as: UTF8.self), sequence: fields.sequence))
        case "DROP":
            guard let count = Int(fields.rest()) else { break }
            return .dropped(count)
        case "POSITION":
            guard let id = UInt64(fields.rest()) else { break }
            return .position(id)
        case "PONG":
            return .pong
        default:
            break
        }
        throw EventWireError(sequence: 0, "malformed reply from the hub: \(String(decoding: line.prefix(60), as: UTF8.self))")
    }
}

/// The fields of a `MSG id publisher seq topic payload` line, found in its
/// bytes without copying or checking the topic and payload: what a
/// subscriber needs to discard duplicates and print the line. The one
/// reader of MSG lines; `EventReply.parse` checks the rest.
public struct MessageLine: Sendable {
    public let id: UInt64
    public let publisher: ArraySlice<UInt8>
    public let sequence: UInt64
    public let topic: ArraySlice<UInt8>
    public let payload: ArraySlice<UInt8>

    static let prefix = Array("MSG ".utf8)

    public init?(_ line: ArraySlice<UInt8>) {
        var rest = line.last == 0x0D ? line.dropLast() : line
        guard rest.starts(with: Self.prefix) else { return nil }
        rest = rest.dropFirst(4)
        func field(_ rest: inout ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
            guard let space = rest.firstIndex(of: 0x20), space > rest.startIndex else { return nil }
            defer { rest = rest[(space + 1)...] }
            return rest[..<space]
        }
        func number(_ digits: ArraySlice<UInt8>) -> UInt64? {
            guard digits.count <= 19 else { return nil }
            var value: UInt64 = 0
            for byte in digits {
                let digit = byte &- 0x30
                guard digit < 10 else { return nil }
                value = value * 10 + UInt64(digit)
            }
            return value
        }
        guard let idField = field(&rest), let id = number(idField), let publisher = field(&rest),
              let sequenceField = field(&rest), let sequence = number(sequenceField), let topic = field(&rest), !rest.isEmpty else { return nil }
        (self.id, self.publisher, self.sequence, self.topic, payload) = (id, publisher, sequence, topic, rest)
    }
}

/// Splits a stream message into its lines (without the line feeds).
public enum EventLines {
    public static func split(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: true)
    }

    /// Joins lines into stream messages of at most `maxBytes` each (a longer
    /// line goes alone).
    public static func pack(_ lines: [String], maxBytes: Int = 60_000) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var current: [UInt8] = []
        for line in lines {
            if !current.isEmpty, current.count + line.utf8.count + 1 > maxBytes {
                messages.append(current)
                current = []
            }
            current.append(contentsOf: line.utf8)
            current.append(0x0A)
        }
        if !current.isEmpty { messages.append(current) }
        return messages
    }
}

/// A durable subscriber's name: 1 to 64 of letters, digits, `.`, `_`, `-`.
public enum DurableName {
    public static func validate(_ name: String) throws(ParseError) {
        guard (1...64).contains(name.utf8.count),
              name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }) else {
            throw ParseError("durable name", name, "use 1 to 64 letters, digits, '.', '_' or '-'")
        }
    }
}

public struct EventWireError: Error, Equatable, CustomStringConvertible {
    /// The publication the error is about (0: none).
    public var sequence: UInt64
    public var reason: String
    public init(sequence: UInt64, _ reason: String) {
        self.sequence = sequence
        self.reason = reason
    }
    public var description: String { reason }
}

/// Space-separated fields of one line, the last taking the rest. Split on
/// bytes, not characters: a space followed by a combining mark is still a
/// separator.
struct EventFields {
    private var bytes: ArraySlice<UInt8>

    init(_ line: ArraySlice<UInt8>) {
        bytes = line.last == 0x0D ? line.dropLast() : line
    }

    mutating func word() -> String {
        guard let space = bytes.firstIndex(of: 0x20) else {
            defer { bytes = [] }
            return String(decoding: bytes, as: UTF8.self)
        }
        defer { bytes = bytes[(space + 1)...] }
        return String(decoding: bytes[..<space], as: UTF8.self)
    }

    mutating func rest() -> String {
        defer { bytes = [] }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func filter() throws(EventWireError) -> TopicFilter {
        do { return try TopicFilter(word()) } catch { throw EventWireError(sequence: 0, error.description) }
    }
}
