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
    /// once everything is spooled (or at the first error). With `wait`, it
    /// comes once the hub has handled what was spooled, or 5 s after the
    /// lines arrived at the latest (they stay spooled): a refusal is an error
    /// naming the hub's reason.
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
        let wait = acknowledged && request["wait"] == .bool(true)
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
            /// When the first line of the batch being read arrived, plus 5 s.
            var verdictBy = NIODeadline.now()
            var verdicts: [EventLoopFuture<PublishVerdicts.Verdict>] = []
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
                } else if wait {
                    state.inFlight = true
                    let verdicts = state.verdicts
                    stream.eventLoop.makeFutureWithTask { () -> JSONValue in
                        var all: [PublishVerdicts.Verdict] = []
                        for verdict in verdicts { all.append(try await verdict.get()) }
                        let verdict = PublishVerdicts.Verdict.merged(all)
                        return Self.answer(verdict, published: state.count, hub: hub, lastError: verdict.confirmed ? nil : await events.lastError(of: hub))
                    }.whenComplete { result in
                        state.inFlight = false
                        finish((try? result.get()) ?? ControlSocket.failure("the node stopped before the hub answered"))
                    }
                } else {
                    finish(ControlSocket.ok(JSONObject([("published", .number(Double(state.count))), ("hub", .string(hub))])))
                }
                return
            }
            state.inFlight = true
            let loop = stream.eventLoop
            let verdictBy = wait ? state.verdictBy : nil
            loop.makeFutureWithTask {
                try await events.publish(to: hub, messages: batch, acknowledged: acknowledged, verdictBy: verdictBy)
            }.whenComplete { result in
                state.inFlight = false
                switch result {
                case .success(let verdict):
                    if let verdict { state.verdicts.append(verdict) }
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
            if state.batch.count == 1 { // once per burst of lines
                state.verdictBy = .now() + .seconds(5)
                stream.eventLoop.execute { flush() }
            }
            if state.batch.count >= 5_000 { flush() }
        }
    }

    /// The answer to a `pilot publish` that waited: an error naming the
    /// hub's reason when it refused any message, else how many the hub
    /// confirmed and how many stay spooled (and why, when known).
    static func answer(_ verdict: PublishVerdicts.Verdict, published: Int, hub: String, lastError: String?) -> JSONValue {
        if let refusal = verdict.firstRefusal {
            let which = verdict.messages == 1 ? "the message" : "\(verdict.refused) of \(verdict.messages) messages"
            return ControlSocket.failure("hub \(hub) refused \(which): \(refusal.reason)")
        }
        var reply = JSONObject([("published", .number(Double(published))), ("hub", .string(hub))])
        if !verdict.confirmed {
            reply["spooled"] = .bool(true)
            if let lastError { reply["hub_error"] = .string(lastError) }
        }
        return ControlSocket.ok(reply)
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
