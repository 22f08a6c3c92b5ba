internal import NIOCore
internal import PilotCore
internal import PilotEvents
internal import PilotTransport

/// `pilot publish` and `pilot subscribe`: control connections taken over
/// by a stream of lines, served through this node's event service.
extension Node {
    private func hubName(_ request: JSONValue) throws -> String {
        guard let hub = request["to"]?.stringValue ?? request["from"]?.stringValue ?? options.hub else {
            throw EventServiceError("no hub given: use --to/--from HUB, or set one with 'pilot init --hub NAME'")
        }
        do { return try Hostname.validate(hub) } catch { throw EventServiceError("\(error)") }
    }

    /// `pilot publish`: payload lines after the request, then `END`; without
    /// a topic in the request, each line is `TOPIC PAYLOAD`. Each burst of
    /// lines is spooled in one transaction; the answer comes after `END`,
    /// once everything is spooled (or at the first error).
    func publish(_ request: JSONValue, _ stream: ControlStream) {
        guard let events else { stream.send(ControlSocket.failure("the event service is not running")); return stream.close() }
        let hub: String, topic: Topic?
        do {
            hub = try hubName(request)
            topic = try request["topic"]?.stringValue.map { try Topic($0) }
        } catch {
            stream.send(ControlSocket.failure("\(error)"))
            return stream.close()
        }
        let acknowledged = request["ack"] != .bool(false)
        let maxBytes = options.events.limits.maxPayloadBytes
        final class State: @unchecked Sendable {
            var batch: [(topic: Topic, payload: String)] = []
            var topics = TopicCache()
            var count = 0
            var lineNumber = 0
            var failed = false
            var ended = false
            var inFlight = false
            /// A bad line ends the publication after what came before it is spooled.
            var badLine: String?
        }
        let state = State()
        @Sendable func finish(_ reply: JSONValue) {
            guard !state.failed else { return }
            state.failed = true
            stream.send(reply)
            stream.close()
        }
        @Sendable func flush() {
            guard !state.inFlight, !state.failed else { return }
            let batch = state.batch
            state.batch = []
            if batch.isEmpty {
                guard state.ended else { return }
                if let bad = state.badLine {
                    finish(ControlSocket.failure(bad + " (\(state.count) messages before it were published)"))
                } else {
                    finish(ControlSocket.ok(JSONObject([("published", .number(Double(state.count))), ("hub", .string(hub))])))
                }
                return
            }
            state.inFlight = true
            let loop = stream.eventLoop
            loop.makeFutureWithTask { try await events.publish(to: hub, messages: batch, acknowledged: acknowledged) }.whenComplete { result in
                state.inFlight = false
                switch result {
                case .success:
                    state.count += batch.count
                    flush()
                case .failure(let error):
                    finish(ControlSocket.failure("\(error)" + (state.count > 0 ? " (\(state.count) messages were published before)" : "")))
                }
            }
        }
        stream.onLine = { line in
            guard !state.failed, !state.ended else { return }
            if line.elementsEqual("END".utf8) {
                state.ended = true
                return flush()
            }
            state.lineNumber += 1
            var lineTopic = topic
            var payload = line
            if topic == nil {
                guard let space = line.firstIndex(of: 0x20), let parsed = try? state.topics.topic(line[..<space]) else {
                    state.badLine = "line \(state.lineNumber): expected TOPIC PAYLOAD"
                    state.ended = true
                    return flush()
                }
                lineTopic = parsed
                payload = line[(space + 1)...]
            }
            guard let lineTopic, payload.first == UInt8(ascii: "{"), payload.count <= maxBytes else {
                state.badLine = "payload line \(state.lineNumber): not a JSON object of at most \(maxBytes) bytes"
                state.ended = true
                return flush()
            }
            state.batch.append((lineTopic, String(decoding: payload, as: UTF8.self)))
            if state.batch.count == 1 { stream.eventLoop.execute { flush() } } // once per burst of lines
            if state.batch.count >= 5_000 { flush() }
        }
    }

    /// `pilot subscribe`: confirmation, then message lines; the CLI sends acks.
    func subscribe(_ request: JSONValue, _ stream: ControlStream) {
        guard let events else { stream.send(ControlSocket.failure("the event service is not running")); return stream.close() }
        do {
            let hub = try hubName(request)
            guard case .array(let items)? = request["filters"], !items.isEmpty, items.count <= 64 else {
                throw EventServiceError("subscribe needs 1 to 64 filters")
            }
            let filters = try items.map { try TopicFilter($0.stringValue ?? "") }
            let durable = request["durable"]?.stringValue
            if let durable { try DurableName.validate(durable) }
            events.subscribe(hubName: hub, filters: filters, durable: durable, stream: stream)
        } catch {
            stream.send(ControlSocket.failure("\(error)"))
            stream.close()
        }
    }
}
