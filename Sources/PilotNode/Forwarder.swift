internal import Logging
internal import NIOCore
internal import PilotCore
internal import PilotEvents
internal import PilotWire

/// Sends one hub's spool: in order, many lines to a stream message, a
/// bounded amount unacknowledged, again from the oldest after a reconnect.
final class Forwarder: @unchecked Sendable {
    let hubName: String
    let spool: EventSpool
    unowned let service: EventService
    var connection: StreamMux.ConnectionID?
    var link = HubLink()
    var window: SpoolWindow
    var resent: Int { window.resent }
    var refused = 0
    var lastError: String? { link.lastError }
    /// Fire-and-forget lines waiting for the connection (bounded).
    var unacknowledged: [String] = []
    /// Whether the hub ever answered (accepted or refused) in this run.
    var contacted = false
    var refusal: String?
    var contactWaiters: [EventLoopPromise<String?>] = []
    /// Connected, and the hub has not said its protocol version yet.
    var awaitingVersion = false
    /// `pilot publish` waiting for the hub's word on what it spooled.
    var verdicts = PublishVerdicts()
    var verdictPromises: [PublishVerdicts.ID: EventLoopPromise<PublishVerdicts.Verdict>] = [:]

    init(hubName: String, spool: EventSpool, service: EventService) {
        self.hubName = hubName
        self.spool = spool
        self.service = service
        window = SpoolWindow(acknowledged: spool.acknowledged)
    }

    /// The hub's verdict on `range` (just spooled), or the verdict so far
    /// once `deadline` passes: the messages then stay spooled.
    func verdict(on range: ClosedRange<UInt64>, by deadline: NIODeadline) -> EventLoopFuture<PublishVerdicts.Verdict> {
        let promise = service.loop.makePromise(of: PublishVerdicts.Verdict.self)
        let (id, evicted) = verdicts.expect(range)
        if let evicted { verdictPromises.removeValue(forKey: evicted.id)?.succeed(evicted.verdict) }
        verdictPromises[id] = promise
        service.loop.scheduleTask(deadline: deadline) { [self] in
            if let verdict = verdicts.giveUp(id) { verdictPromises.removeValue(forKey: id)?.succeed(verdict) }
        }
        return promise.futureResult
    }

    /// The node stops: whoever waits hears that the messages stay spooled.
    func abandonVerdicts() {
        for (id, promise) in verdictPromises { promise.succeed(verdicts.giveUp(id) ?? .init(messages: 0)) }
        verdictPromises = [:]
    }

    func sendUnacknowledged(_ messages: [(topic: Topic, payload: String)]) {
        for message in messages where unacknowledged.count < 10_000 {
            unacknowledged.append(EventRequest.publish(sequence: 0, topic: message.topic, payload: message.payload).line)
        }
    }

    func tick() {
        // A refusal with nothing spooled is retried too (with the link's
        // backoff), so the error clears once the hub trusts this node.
        if connection == nil, spool.count > 0 || !unacknowledged.isEmpty || link.lastError != nil { pump() }
        // With publications waiting for the hub, a quiet hub is probed, so
        // that one that died shows as not answering within seconds.
        if let connection, spool.count > 0, link.shouldProbe(now: service.clock.monotonic()) {
            service.tunnels.sendOnStream(Array((EventRequest.ping.line + "\n").utf8), on: connection)
        }
    }

    /// Connected, and the hub answered recently or has nothing of ours to answer.
    var isConnected: Bool { connection != nil && (spool.count == 0 || link.isAnswering(now: service.clock.monotonic())) }

    /// Resolves once the first connection attempt is decided: nil when the
    /// hub accepted or could not be reached (the spool will wait for it),
    /// else the refusal. Later calls answer from what is known.
    func firstContact() -> EventLoopFuture<String?> {
        let loop = service.loop
        if connection != nil || (contacted && refusal == nil) { return loop.makeSucceededFuture(nil) }
        let promise = loop.makePromise(of: String?.self)
        contactWaiters.append(promise)
        if contactWaiters.count == 1 {
            connect(force: true)
            loop.scheduleTask(in: .seconds(5)) { [self] in self.settleContact(nil) } // away: spool and go on
        }
        return promise.futureResult
    }

    func settleContact(_ refusal: String?) {
        let waiters = contactWaiters
        contactWaiters = []
        for waiter in waiters { waiter.succeed(refusal) }
    }

    func pump() {
        guard let connection else { return connect() }
        guard !awaitingVersion else { return } // the hub's VERSION answer pumps
        let tunnels = service.tunnels
        if !unacknowledged.isEmpty {
            for frame in EventLines.pack(unacknowledged) { tunnels.sendOnStream(frame, on: connection) }
            unacknowledged = []
        }
        while window.hasRoom(lastSequence: spool.lastSequence, acknowledged: spool.acknowledged), tunnels.queuedOnStream(connection) < 16 {
            guard let batch = try? spool.pendingFrames(after: window.sentUpTo, limit: 2_000), batch.count > 0 else { break }
            for frame in batch.frames { tunnels.sendOnStream(frame, on: connection) }
            window.sent(upTo: batch.last)
        }
        tunnels.whenStreamWritable(connection, window.sentUpTo < spool.lastSequence ? { [weak self] in self?.pump() } : nil)
    }

    func connect(force: Bool = false) {
        guard link.shouldConnect(now: service.clock.monotonic(), force: force) else { return }
        let hubName = self.hubName
        service.connectToHub(hubName, received: { [weak self] result in self?.received(result) }) { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.failed(EventService.explain(error, hub: hubName), refused: EventService.isRefusal(error))
            }
        }
    }

    func connected(_ connection: StreamMux.ConnectionID) {
        self.connection = connection
        link.connected(now: service.clock.monotonic())
        // The hub's refusal of an untrusted node comes as a reset of this
        // connection; its VERSION answer settles it, and only then do
        // publications go (an older hub would misread a newer node).
        awaitingVersion = true
        let hello = [EventRequest.version(EventRequest.protocolVersion), .ping, .epoch(spool.epoch)].map { $0.line + "\n" }.joined()
        service.tunnels.sendOnStream(Array(hello.utf8), on: connection)
        window.reconnected(acknowledged: spool.acknowledged)
    }

    func failed(_ reason: String, refused: Bool) {
        connection = nil
        if refused {
            contacted = true
            refusal = reason
            settleContact(reason)
        }
        if lastError != reason { service.logger.warning("event hub unreachable; publications stay spooled", metadata: ["hub": "\(hubName)", "reason": "\(reason)"]) }
        link.failed(reason, now: service.clock.monotonic())
    }

    func received(_ result: Result<[UInt8], any Error>) {
        switch result {
        case .failure(TunnelError.reset(let why)) where why.code == .idleTimeout && spool.count == 0:
            connection = nil // quiet for two minutes: reconnect when there is something to send
            link.closed()
        case .failure(let error):
            failed(EventService.explain(error, hub: hubName), refused: EventService.isRefusal(error))
        case .success(let bytes):
            var lines = EventLines.split(bytes)[...]
            if awaitingVersion, let first = lines.first {
                awaitingVersion = false
                lines = lines.dropFirst()
                guard case .version(EventRequest.protocolVersion)? = try? EventReply.parse(first) else {
                    let open = connection
                    failed(EventService.olderHub(hubName), refused: true)
                    if let open { service.tunnels.resetStream(open, reason: "event protocol \(EventRequest.protocolVersion) needed") }
                    return
                }
            }
            // The hub answers: it takes this node (a refusal from before, e.g.
            // "not trusted", is over).
            link.heard(now: service.clock.monotonic())
            refusal = nil
            if !contacted {
                contacted = true
                settleContact(nil)
            }
            for line in lines {
                switch try? EventReply.parse(line) {
                case .published(let upTo)?:
                    do { try spool.acknowledge(upTo: upTo) } catch {
                        service.logger.error("cannot update the spool", metadata: ["error": "\(error)"])
                    }
                    for (id, verdict) in verdicts.acknowledged(upTo: upTo) { verdictPromises.removeValue(forKey: id)?.succeed(verdict) }
                case let .error(sequence, reason)?:
                    refused += 1
                    verdicts.refused(sequence, reason: reason)
                    service.logger.error("the hub refused a publication", metadata: ["hub": "\(hubName)", "seq": "\(sequence)", "reason": "\(reason)"])
                default:
                    break
                }
            }
            pump()
        }
    }
}
