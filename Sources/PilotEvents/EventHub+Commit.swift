/// The hub's commit: one transaction for what was published, then the
/// acknowledgements, then each stored message into its subscribers' queues.
extension EventHub {
    /// Stores what was published since the last commit in one transaction,
    /// then acknowledges it and hands it to subscribers. On a storage error
    /// nothing is acknowledged; the error names the connections whose
    /// publications were not stored (they should be reset, so their
    /// publishers send them again).
    public func commit(now: Int64) throws(CommitError) {
        let batch = pending
        pending = []
        let ids: [UInt64]
        do { ids = try log.append(batch.map(\.message), at: now) } catch {
            watermarks = (try? log.watermarks()) ?? watermarks
            let affected = Set(batch.map(\.connection))
            for connection in affected { sessions[connection]?.ackDue = 0 }
            acksDue.subtract(affected)
            throw CommitError(reason: "cannot store events: \(error)", connections: Array(affected))
        }
        statistics.stored += batch.count
        for connection in acksDue {
            guard let due = sessions[connection]?.ackDue, due > 0 else { continue }
            sessions[connection]!.replies.append(EventReply.published(upTo: due).line)
            sessions[connection]!.ackDue = 0
            ready.insert(connection)
        }
        acksDue = []
        if !dirtyCursors.isEmpty {
            do { try log.save(cursors: cursors.filter { dirtyCursors.contains($0.key) }) } catch {
                throw CommitError(reason: "cannot store subscriber positions: \(error)", connections: [])
            }
            dirtyCursors = []
        }
        guard !ids.isEmpty else { return }
        // Only the filters: a copy of the sessions would share their queues
        // and make every append below copy a whole queue.
        let subscribers = subscribing.compactMap { connection in sessions[connection].map { (connection, $0.filters, $0.local) } }
        guard !subscribers.isEmpty else { return }
        for (index, id) in ids.enumerated() {
            let message = batch[index].message
            // Encoded once for the peers, made once for the process (one parse shared).
            var line: [UInt8]?
            var delivery: EventDelivery?
            for (connection, filters, local) in subscribers where filters.contains(where: { $0.matches(message.topic) }) {
                if local {
                    let value = delivery ?? EventDelivery(id: id, message: message)
                    delivery = value
                    enqueue(.delivery(value), id: id, for: connection)
                } else {
                    let bytes = line ?? EventReply.messageBytes(id: id, message)
                    line = bytes
                    enqueue(.line(bytes), id: id, for: connection)
                }
            }
        }
    }

    enum Queued {
        case line([UInt8])
        case delivery(EventDelivery)
        /// What it counts against the queue's byte bound.
        var size: Int {
            switch self {
            case .line(let bytes): bytes.count
            case .delivery(let delivery): delivery.message.payload.utf8.count + 64
            }
        }
    }

    func enqueue(_ item: Queued, id: UInt64, for connection: Connection) {
        guard var session = sessions[connection] else { return }
        sessions[connection] = nil // edit in place, without copying the queue
        defer {
            sessions[connection] = session
            ready.insert(connection)
        }
        let size = item.size
        let full = session.queued >= options.queuePerSubscriber || session.queuedBytes + size > options.queueBytesPerSubscriber
        if session.durable != nil {
            guard !session.replaying else { return } // it reads from the log
            guard !full else {
                session.replaying = true // fell behind: continue from the log after `position`
                return
            }
            session.position = id
        } else {
            while session.queued > 0,
                  session.queued >= options.queuePerSubscriber || session.queuedBytes + size > options.queueBytesPerSubscriber {
                session.queuedBytes -= session.local ? Queued.delivery(session.deliveries[session.head]).size : session.queue[session.head].count
                session.head += 1
                session.droppedUnreported += 1
                statistics.droppedSlow += 1
            }
        }
        switch item {
        case .line(let line):
            if session.head > 4096, session.head * 2 > session.queue.count {
                session.queue.removeFirst(session.head)
                session.head = 0
            }
            session.queue.append(line)
        case .delivery(let delivery):
            if session.head > 4096, session.head * 2 > session.deliveries.count {
                session.deliveries.removeFirst(session.head)
                session.head = 0
            }
            session.deliveries.append(delivery)
        }
        session.queuedBytes += size
    }
}
