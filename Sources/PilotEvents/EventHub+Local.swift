/// The hub's in-process connections (`open(_:peer:local: true)`): what the
/// node's own roles subscribed to, handed over as values.
extension EventHub {
    /// What an in-process connection has: up to `limit` messages, and how
    /// many it lost since the last call (a plain subscriber that fell
    /// behind); nil when it has nothing. Replies (confirmations) are
    /// dropped: its requests were typed, and checked by the caller.
    public func nextDeliveries(for connection: Connection, limit: Int = 2_000) -> (deliveries: [EventDelivery], dropped: Int)? {
        guard var session = sessions[connection], session.local else { return nil }
        sessions[connection] = nil
        defer {
            if !session.hasOutput { ready.remove(connection) }
            sessions[connection] = session
        }
        session.replies = []
        let dropped = session.droppedUnreported
        session.droppedUnreported = 0
        let end = min(session.deliveries.count, session.head + limit)
        var out = Array(session.deliveries[session.head..<end])
        for delivery in out { session.queuedBytes -= Queued.delivery(delivery).size }
        session.head = end
        statistics.delivered += out.count
        if session.head == session.deliveries.count {
            session.deliveries = []
            session.head = 0
        }
        if session.queued == 0, session.replaying, out.count < limit {
            let batch = min(options.replayBatch, limit - out.count)
            if let entries = try? log.read(after: session.position, limit: batch) { // else retried at the next call
                for entry in entries {
                    session.position = entry.id
                    guard session.filters.contains(where: { $0.matches(entry.message.topic) }) else { continue }
                    out.append(EventDelivery(id: entry.id, message: entry.message))
                    statistics.delivered += 1
                    statistics.replayed += 1
                }
                if entries.count < batch {
                    session.position = max(session.position, log.lastID)
                    session.replaying = false // caught up: live messages queue from here
                }
            }
        }
        return out.isEmpty && dropped == 0 ? nil : (out, dropped)
    }
}
