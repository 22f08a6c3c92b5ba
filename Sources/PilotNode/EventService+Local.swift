internal import Logging
internal import NIOCore
public import PilotCore
public import PilotEvents

extension EventService {
    // MARK: In-process publishing and subscribing (the hub's own roles)

    /// Subscribes a part of this process to its own broker. Durable ones
    /// resume after their last `acknowledge`. The handler runs on the loop.
    public func subscribeLocally(filters: [TopicFilter], durable: String?, handler: @escaping @Sendable ([Delivery]) -> Void) async -> Int {
        (try? await loop.submit { [self] () -> Int in
            nextLocal += 1
            let connection = Connection.local(nextLocal)
            localSubscribers[nextLocal] = handler
            hub.open(connection, peer: localName, local: true)
            for filter in filters { hub.apply(.subscribe(filter, durable: durable), from: connection) }
            scheduleCommit()
            flush(connection)
            return nextLocal
        }.get()) ?? 0
    }

    /// A durable local subscriber has handled everything up to `id`.
    public func acknowledgeLocally(_ subscriber: Int, upTo id: UInt64) {
        loop.execute { [self] in
            hub.apply(.ack(id), from: .local(subscriber))
            scheduleCommit()
        }
    }

    /// Publishes into this node's own broker: stored in its log with the
    /// next commit (no spool: the log is the durable copy). Numbered like
    /// any publisher's messages, as publisher `KEY/local/EPOCH` with an
    /// epoch of this run, so that consumers discarding duplicates by
    /// (publisher, sequence) keep every one.
    public func publishLocally(_ messages: [(topic: Topic, payload: String)]) async {
        try? await loop.submit { [self] in publishOnLoop(messages) }.get()
    }

    /// `publishLocally` for a caller already on the node's loop (the
    /// aggregator's alerts): in the broker before this returns, no task.
    public func publishOnLoop(_ messages: [(topic: Topic, payload: String)]) {
        loop.preconditionInEventLoop()
        do {
            for message in messages {
                // Checked as the hub checks a peer's (pilot publish on the hub comes this way).
                guard let payload = try? EventMessage.validate(payload: message.payload, limits: options.limits) else {
                    logger.error("an in-process publication is not a JSON object within the limit; dropped", metadata: ["topic": "\(message.topic)"])
                    continue
                }
                localSequence += 1
                hub.apply(.publish(sequence: localSequence, topic: message.topic, payload: payload), from: .local(0))
            }
            scheduleCommit()
        }
    }

    func tick() {
        for line in hub.maintain(now: clock.wallSeconds()) { logger.error("event hub: \(line)") }
        if hub.needsCommit { scheduleCommit() }
        for forwarder in forwarders.values { forwarder.tick() }
        for subscription in subscriptions.values { subscription.tick() }
    }
}
