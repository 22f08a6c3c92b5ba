#if canImport(Glibc)
internal import Glibc
#endif
internal import ArgumentParser
internal import PilotCore
internal import PilotTransport
internal import PilotEvents
internal import PilotNode

/// Opens a streaming control connection; a node that is not running gets
/// the same one-line advice as the other verbs.
func openNodeStream(_ state: StateOptions, _ request: JSONObject) throws -> ControlConnection {
    let directory = state.nodeDirectory
    do {
        return try ControlConnection(path: ControlSocket.path(stateDirectory: directory), request)
    } catch {
        if case .notRunning = error {
            throw noNodeRunning(directory)
        }
        throw CLIError(error.description)
    }
}

/// The hub publish and subscribe use when none is given: the node's
/// configured one, else the one the registry lists (`Node.hub()`).
func fleetHub(_ state: StateOptions) throws -> String {
    guard let hub = try askNode(state, JSONObject([("cmd", .string("hub"))]))["hub"]?.stringValue else {
        throw CLIError("the node's answer names no hub")
    }
    return hub
}

/// Reads the node's one-line JSON answer; a refusal becomes the error.
func readNodeAnswer(_ connection: ControlConnection) throws -> JSONValue {
    let line: ArraySlice<UInt8>?
    do { line = try connection.readLine() } catch { throw CLIError(error.description) }
    guard let line else { throw CLIError("the node closed the connection without answering") }
    let reply: JSONValue
    do { reply = try JSONValue.parse(Array(line), limits: .init(maxBytes: ControlSocket.maxLineBytes, maxDepth: 16)) } catch {
        throw CLIError("unreadable answer from the node: \(error)")
    }
    guard reply["ok"] == .bool(true) else { throw CLIError(reply["error"]?.stringValue ?? "the node refused the request") }
    return reply
}

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "publish")
    @Argument(help: ArgumentHelp("The topic, e.g. metrics/cpu/web-01 (none with --stdin: each line is TOPIC JSON).", valueName: "topic"))
    var topic: String?
    @Option(help: ArgumentHelp("The payload: one JSON object.", valueName: "json")) var data: String?
    @Flag(help: "Read payloads from standard input, one JSON object a line.") var stdin = false
    @Option(help: ArgumentHelp("The hub (default: the one set by 'pilot init --hub').", valueName: "hub")) var to: String?
    @Flag(name: .customLong("no-ack"), help: "Fire and forget: no spool, no acknowledgement (may be lost).") var noAck = false
    @Flag(name: .customLong("no-wait"), help: "Return once the messages are spooled, without waiting up to 5 s for the hub's verdict.")
    var noWait = false
    @Option(name: .customLong("max-payload-bytes"), help: ArgumentHelp("Refuse payloads larger than this.", valueName: "n"))
    var maxPayloadBytes = 64 * 1024
    @OptionGroup var state: StateOptions

    func validate() throws {
        guard data != nil || stdin else { throw ValidationError("give either --data JSON or --stdin") }
        if data != nil && stdin { throw ValidationError("give either --data JSON or --stdin, not both") }
        if let topic { do { _ = try Topic(topic) } catch { throw ValidationError("\(error)") } }
        guard topic != nil || stdin else { throw ValidationError("give a topic (only --stdin may carry one on each line)") }
        if let to { do { _ = try Hostname.validate(to) } catch { throw ValidationError("--to: \(error)") } }
        guard (2...(16 << 20)).contains(maxPayloadBytes) else { throw ValidationError("--max-payload-bytes must be between 2 and 16777216") }
    }

    func run() async throws {
        var limits = EventMessage.Limits()
        limits.maxPayloadBytes = maxPayloadBytes
        var request = JSONObject([("cmd", .string("publish")), ("ack", .bool(!noAck)), ("wait", .bool(!noAck && !noWait))])
        if let topic { request["topic"] = .string(topic) }
        request["to"] = .string(try to ?? fleetHub(state))
        if let data {
            let payload: String
            do { payload = try EventMessage.validate(payload: data, limits: limits) } catch { throw CLIError("--data: \(error)") }
            let connection = try openNodeStream(state, request)
            try send(connection, Array((payload + "\nEND\n").utf8))
            reportSpooled(try readNodeAnswer(connection))
            return
        }
        let connection = try openNodeStream(state, request)
        var pending: [UInt8] = []
        var lineNumber = 0
        var sent = 0
        var failure: String?
        // Whatever one read(2) returns is sent at once, so `tail -f | pilot
        // publish --stdin` is not held back by buffering.
        var input = StandardInputLines()
        reading: while let lines = input.next() {
            for line in lines {
                lineNumber += 1
                var text = String(decoding: line, as: UTF8.self)
                if text.allSatisfy(\.isWhitespace) { continue }
                do {
                    var prefix = ""
                    if topic == nil { // TOPIC JSON
                        guard let space = text.firstIndex(of: " ") else { throw EventError.badTopic("expected TOPIC JSON") }
                        let lineTopic: Topic
                        do { lineTopic = try Topic(text[..<space]) } catch { throw EventError.badTopic(error.description) }
                        prefix = lineTopic.description + " "
                        text = String(text[text.index(after: space)...])
                    }
                    let payload = try EventMessage.validate(payload: text, limits: limits)
                    pending.append(contentsOf: prefix.utf8)
                    pending.append(contentsOf: payload.utf8)
                    pending.append(0x0A)
                    sent += 1
                } catch {
                    failure = "stdin line \(lineNumber): \(error)"
                    break reading
                }
            }
            if !pending.isEmpty {
                try send(connection, pending)
                pending = []
            }
        }
        try send(connection, pending + Array("END\n".utf8))
        let reply = try readNodeAnswer(connection)
        if let failure {
            let published = reply["published"]?.int64Value ?? Int64(sent)
            throw CLIError("\(failure); nothing from that line on was published (\(published) before it were)")
        }
        reportSpooled(reply)
    }

    /// A hub that did not answer in time is not an error: the messages wait
    /// in the spool, and the user is told so.
    private func reportSpooled(_ reply: JSONValue) {
        guard reply["spooled"] == .bool(true) else { return }
        let count = reply["published"]?.int64Value ?? 0
        let hub = reply["hub"]?.stringValue ?? "the hub"
        let why = reply["hub_error"]?.stringValue.map { " (\($0))" } ?? ""
        Console.current.err("pilot publish: spooled: \(hub) has not confirmed \(count == 1 ? "the message" : "the \(count) messages") within 5 s\(why); they go out when it answers")
    }

    private func send(_ connection: ControlConnection, _ bytes: [UInt8]) throws {
        do { try connection.write(bytes) } catch {
            // The node stopped reading: it says why in its answer.
            _ = try readNodeAnswer(connection)
            throw CLIError(error.description)
        }
    }
}

struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandTable.configuration(for: "subscribe")
    @Argument(help: ArgumentHelp("Topic filters: '*' is one level, a trailing '*' one or more.", valueName: "filter")) var filters: [String]
    @Option(help: ArgumentHelp("The hub (default: the one set by 'pilot init --hub').", valueName: "hub")) var from: String?
    @Flag(help: "Print each message as a JSON object (topic, payload, publisher, seq, and id: its place in the hub's log) instead of '[topic] payload'.") var json = false
    @Option(help: ArgumentHelp("Exit after this many messages.", valueName: "n")) var count: Int?
    @Option(help: ArgumentHelp("Exit after this long, e.g. 30s (an error if --count was not reached).", valueName: "duration")) var timeout: Seconds?
    @Option(help: ArgumentHelp("A durable subscription: the hub keeps messages for NAME and resumes after the last one printed.", valueName: "name"))
    var durable: String?
    @OptionGroup var state: StateOptions

    func validate() throws {
        guard !filters.isEmpty, filters.count <= 64 else { throw ValidationError("give 1 to 64 filters") }
        for filter in filters { do { _ = try TopicFilter(filter) } catch { throw ValidationError("\(error)") } }
        if let from { do { _ = try Hostname.validate(from) } catch { throw ValidationError("--from: \(error)") } }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let timeout, !(timeout.value > 0 && timeout.value <= 31_536_000) { throw ValidationError("--timeout must be between 0 and 31536000 seconds") }
        if let durable { do { try DurableName.validate(durable) } catch { throw ValidationError("--durable: \(error)") } }
    }

    func run() async throws {
        var request = JSONObject([("cmd", .string("subscribe")), ("filters", .array(filters.map { .string($0) }))])
        request["from"] = .string(try from ?? fleetHub(state))
        if let durable { request["durable"] = .string(durable) }
        let connection = try openNodeStream(state, request)
        let deadline = timeout.map { monotonicSeconds() + $0.value }
        func remainingMilliseconds() -> Int32 {
            guard let deadline else { return -1 }
            return Int32(max(0, min(Double(Int32.max), (deadline - monotonicSeconds()) * 1000)))
        }
        guard connection.waitReadable(milliseconds: remainingMilliseconds()) else {
            throw CLIError("the hub did not confirm the subscription within \(timeout?.description ?? "0s")")
        }
        _ = try readNodeAnswer(connection)
        var received = 0
        while count.map({ received < $0 }) ?? true {
            guard connection.waitReadable(milliseconds: remainingMilliseconds()) else {
                if let count { throw CLIError("timed out after \(timeout?.description ?? "0s") with \(received) of \(count) messages") }
                return
            }
            var output: [UInt8] = []
            var lastID: UInt64?
            // Everything already here, printed with one write.
            repeat {
                let line: ArraySlice<UInt8>?
                do { line = try connection.readLine() } catch { throw CLIError(error.description) }
                guard let line else {
                    if !output.isEmpty { Console.current.out(String(decoding: output.dropLast(), as: UTF8.self)) }
                    throw CLIError("the node ended the subscription")
                }
                if let message = MessageLine(line) {
                    lastID = message.id
                    // Appended in place: one growing buffer, no per-message strings.
                    if json {
                        output.append(contentsOf: #"{"topic":""#.utf8)
                        output.append(contentsOf: message.topic)
                        output.append(contentsOf: #"","payload":"#.utf8)
                        output.append(contentsOf: message.payload)
                        output.append(contentsOf: #","publisher":""#.utf8)
                        output.append(contentsOf: message.publisher)
                        output.append(contentsOf: #"","seq":\#(message.sequence),"id":\#(message.id)}"#.utf8)
                    } else {
                        output.append(UInt8(ascii: "["))
                        output.append(contentsOf: message.topic)
                        output.append(contentsOf: "] ".utf8)
                        output.append(contentsOf: message.payload)
                    }
                    output.append(0x0A)
                    received += 1
                    continue
                }
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("DROP ") {
                    Console.current.err("pilot subscribe: \(text.dropFirst(5)) messages dropped before this subscriber could take them (it fell behind, or lost its connection to the hub)")
                } else if text.hasPrefix("{"), let reply = try? JSONValue.parse(text), reply["ok"] == .bool(false) {
                    throw CLIError(reply["error"]?.stringValue ?? "the node ended the subscription")
                }
            } while count.map({ received < $0 }) ?? true && connection.waitReadable(milliseconds: 0)
            if !output.isEmpty { Console.current.out(String(decoding: output.dropLast(), as: UTF8.self)) }
            if durable != nil, let lastID { try? connection.write(Array((EventRequest.ack(lastID).line + "\n").utf8)) }
        }
    }
}

/// Standard input in lines, a read(2) at a time: each call returns the
/// complete lines of what arrived (the last line may lack its line feed
/// at the end of input); nil at the end. A line is at most 16 MiB.
struct StandardInputLines {
    private var buffer: [UInt8] = []
    private var ended = false

    mutating func next() -> [ArraySlice<UInt8>]? {
        while true {
            if ended {
                guard !buffer.isEmpty else { return nil }
                defer { buffer = [] }
                return [buffer[...]]
            }
            var chunk = [UInt8](repeating: 0, count: 256 * 1024)
            let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                ended = true
                continue
            }
            buffer.append(contentsOf: chunk[..<n])
            guard let lastNewline = buffer.lastIndex(of: 0x0A) else {
                if buffer.count > 16 << 20 { ended = true } // an endless line: hand it over as it is
                continue
            }
            let complete = Array(buffer[...lastNewline])
            buffer.removeFirst(lastNewline + 1)
            return complete.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { $0 }
        }
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
