internal import Logging
internal import PilotCore
internal import PilotEvents
internal import PilotTransport
internal import PilotWire

/// Where a subscription's messages go: a CLI's control stream, or a part
/// of this process (the store). Called on the loop.
protocol SubscriptionSink: AnyObject, Sendable {
    var isWritable: Bool { get }
    func confirmed(hub: String)
    /// The first connection failed: the end of this subscription.
    func failed(_ reason: String)
    /// `MSG` (and `DROP`) lines, each ending in a line feed.
    func deliver(_ lines: [UInt8])
}

final class ControlStreamSink: SubscriptionSink, @unchecked Sendable {
    let stream: ControlStream
    init(_ stream: ControlStream) { self.stream = stream }
    var isWritable: Bool { stream.isWritable }
    func confirmed(hub: String) { stream.send(ControlSocket.ok(JSONObject([("hub", .string(hub))]))) }
    func failed(_ reason: String) {
        stream.send(ControlSocket.failure(reason))
        stream.close()
    }
    func deliver(_ lines: [UInt8]) { stream.send(lines) }
}

final class HandlerSink: SubscriptionSink, @unchecked Sendable {
    let handler: @Sendable ([EventService.Delivery]) -> Void
    let onStatus: @Sendable (String?) -> Void
    init(handler: @escaping @Sendable ([EventService.Delivery]) -> Void, onStatus: @escaping @Sendable (String?) -> Void) {
        self.handler = handler
        self.onStatus = onStatus
    }
    var isWritable: Bool { true }
    func confirmed(hub: String) { onStatus(nil) }
    func failed(_ reason: String) { onStatus(reason) }
    func deliver(_ lines: [UInt8]) {
        let deliveries = EventService.deliveries(in: lines)
        if !deliveries.isEmpty { handler(deliveries) }
    }
}

/// One `pilot subscribe`: a connection to the hub on behalf of a control
/// stream, reconnected after failures (a durable one resumes where the CLI
/// acknowledged).
final class Subscription: @unchecked Sendable {
    let hubName: String
    let filters: [TopicFilter]
    let durable: String?
    let sink: any SubscriptionSink
    unowned let service: EventService
    var connection: StreamMux.ConnectionID?
    var link = HubLink()
    var core: SubscriptionCore
    var confirmed: Bool { core.isConfirmed }
    var stopped = false

    init(hubName: String, filters: [TopicFilter], durable: String?, sink: any SubscriptionSink, service: EventService) {
        self.hubName = hubName
        self.filters = filters
        self.durable = durable
        self.sink = sink
        self.service = service
        core = SubscriptionCore(filters: filters, durable: durable != nil)
    }

    func connect() {
        guard !stopped, connection == nil, link.shouldConnect(now: service.clock.monotonic(), force: !confirmed) else { return }
        let hubName = self.hubName
        service.connectToHub(hubName, received: { [weak self] result in self?.received(result) }) { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.failed(EventService.explain(error, hub: hubName))
            }
        }
    }

    func connected(_ connection: StreamMux.ConnectionID) {
        guard !stopped else { return service.tunnels.resetStream(connection, reason: "subscriber gone") }
        self.connection = connection
        core.connected()
        link.connected(now: service.clock.monotonic())
        service.tunnels.sendOnStream(core.hello(durable: durable), on: connection)
    }

    func failed(_ reason: String) {
        connection = nil
        link.failed(reason, now: service.clock.monotonic())
        if !confirmed {
            // The first attempt failed: tell the CLI, which says so and exits.
            stop()
            sink.failed(reason)
            return
        }
        service.logger.info("subscription to the hub lost; reconnecting", metadata: ["hub": "\(hubName)", "reason": "\(reason)"])
    }

    func tick() {
        if connection == nil, confirmed, sink.isWritable { connect() }
        // Quiet connections are probed, so a hub that restarted (and forgot
        // the connection) answers with a reset within seconds.
        if let connection, link.shouldProbe(now: service.clock.monotonic()) {
            service.tunnels.sendOnStream(Array((EventRequest.ping.line + "\n").utf8), on: connection)
        }
    }

    func received(_ result: Result<[UInt8], any Error>) {
        guard !stopped else { return }
        switch result {
        case .failure(let error):
            failed(EventService.explain(error, hub: hubName))
        case .success(let bytes):
            link.heard(now: service.clock.monotonic())
            let discarded = core.duplicatesDiscarded
            let events = core.received(bytes, consumerHasRoom: sink.isWritable)
            service.duplicatesDiscarded += core.duplicatesDiscarded - discarded
            for event in events {
                switch event {
                case .confirmed:
                    sink.confirmed(hub: hubName)
                case .refused(let reason):
                    let refusedOn = connection
                    failed(reason)
                    if let refusedOn { service.tunnels.resetStream(refusedOn, reason: "refused") }
                    return
                case .warning(let reason):
                    service.logger.warning("the hub reports", metadata: ["hub": "\(hubName)", "error": "\(reason)"])
                case .deliver(let lines):
                    sink.deliver(lines)
                case .pause:
                    pause()
                }
            }
        }
    }

    func pause() {
        guard let connection else { return }
        service.tunnels.resetStream(connection, reason: "subscriber busy")
        self.connection = nil
        link.closed()
    }

    func writable() {
        if let drop = core.consumerReady() { sink.deliver(drop) }
        if connection == nil, confirmed { connect() }
    }

    /// The consumer has everything up to `id` (durable subscriptions).
    func acknowledge(_ id: UInt64) {
        guard let connection, durable != nil else { return }
        service.tunnels.sendOnStream(Array((EventRequest.ack(id).line + "\n").utf8), on: connection)
    }

    func stop() {
        stopped = true
        if let connection { service.tunnels.resetStream(connection, reason: "subscriber gone") }
        connection = nil
    }
}
