public import PilotCore

/// The broker of virtual port 1002 as a state machine over the durable
/// log, independent of the network: connections come and go, send request
/// lines, and are asked for their next frame when they can take one.
///
/// - Publications are checked, freed of duplicates by (publisher, sequence)
///   against each publisher's watermark, and acknowledged (cumulatively)
///   only after `commit` has stored them.
/// - Plain subscribers get live messages through a bounded queue: a slow
///   one loses its oldest undelivered messages, is told (`DROP n`) and
///   counted, and never holds up the others. One whose connection was lost
///   (stopped so long that the tunnel gave up on it) says after its `SUB`s
///   where it was (`RESUME id`), and is told and counted the same way what
///   it missed meanwhile.
/// - A durable subscriber (`SUB filter NAME`) resumes after its last `ACK`;
///   when it falls behind it reads from the log instead of a queue, so it
///   loses only what retention removes, which is counted and reported.
/// Confined to one thread (the node's event loop).
public final class EventHub<Connection: Hashable & Sendable> {
    public struct Options: Sendable {
        public var limits = EventMessage.Limits()
        /// A subscriber's queue holds at most this many messages and bytes;
        /// past either, a plain subscriber loses its oldest and a durable
        /// one reads from the log instead.
        public var queuePerSubscriber = 200_000
        public var queueBytesPerSubscriber = 32 << 20
        public var filtersPerConnection = 64
        public var replayBatch = 1_000
        /// A plain subscriber's `RESUME` checks at most this many of the
        /// newest messages it missed against its filters; any older ones
        /// count as missed, whatever their topic (an upper bound, for a
        /// subscriber away that long), so that no `RESUME` costs the hub more.
        public var resumeScanLimit: UInt64 = 1_000_000
        public init() {}
    }

    public struct Statistics: Sendable, Equatable {
        public var stored = 0
        public var duplicates = 0
        public var refused = 0
        /// Of those, publications the topic authority refused.
        public var refusedAuthority = 0
        public var delivered = 0
        public var droppedSlow = 0
        public var droppedRetention = 0
        public var replayed = 0
    }

    struct Session {
        var peer: String
        var epoch = "0" { didSet { publisher = peer + "/" + epoch } }
        /// Who its publications are from: `peer/epoch` (made once, not per message).
        private(set) var publisher: String

        init(peer: String) {
            self.peer = peer
            publisher = peer + "/0"
        }
        var filters: [TopicFilter] = []
        var durable: String?
        /// Durable: the id of the last message queued or sent.
        var position: UInt64 = 0
        var replaying = false
        var queue: [[UInt8]] = []
        /// An in-process connection's queue: values, not lines (`local`).
        var deliveries: [EventDelivery] = []
        var local = false
        /// Whether the peer must say `VERSION` first (and has not yet).
        var awaitingVersion = false
        /// It spoke another version: everything it sends is ignored.
        var wrongVersion = false
        var head = 0
        var queuedBytes = 0
        var replies: [String] = []
        var droppedUnreported = 0
        /// A plain subscriber back after a lost connection had everything up
        /// to this id; settled (`DROP n`) once it has its filters.
        var resumeAfter: UInt64?
        var resumed = false
        /// It took plain filters: tell it where its live messages begin.
        var positionDue = false
        /// The highest publication to acknowledge after the next commit.
        var ackDue: UInt64 = 0

        var queued: Int { (local ? deliveries.count : queue.count) - head }
        var hasOutput: Bool { !replies.isEmpty || droppedUnreported > 0 || queued > 0 || replaying }
    }

    public let log: EventLog
    public let options: Options
    public internal(set) var statistics = Statistics()
    var sessions: [Connection: Session] = [:]
    var pending: [(connection: Connection, message: EventMessage)] = []
    var watermarks: [String: UInt64]
    var cursors: [String: EventLog.Cursor]
    var dirtyCursors: Set<String> = []
    var durableOwners: [String: Connection] = [:]
    /// Connections with something to send.
    public internal(set) var ready: Set<Connection> = []
    /// Connections with publications to acknowledge after the next commit,
    /// and those with filters: a commit visits these, not every session.
    var acksDue: Set<Connection> = []
    var subscribing: Set<Connection> = []
    /// Whether a peer (over the tunnel, not in process) may publish a
    /// topic: nil, or why not (`TopicAuthority`, with the peer's hostname
    /// and grants). Unset, every publication is taken. It gets the
    /// connection, which knows its peer's key already (decoding the key
    /// text again per message validated a curve point each time).
    public var authorize: ((_ connection: Connection, _ topic: Topic, _ payload: String) -> String?)?
    private var topics = TopicCache()

    public init(log: EventLog, options: Options = Options()) throws {
        self.log = log
        self.options = options
        watermarks = try log.watermarks()
        cursors = try log.cursors()
    }

    public var connections: Int { sessions.count }
    public var needsCommit: Bool { !pending.isEmpty || !dirtyCursors.isEmpty || !acksDue.isEmpty }
    public var durableNames: [String: UInt64] { cursors.mapValues(\.position) }

    /// A peer opened a connection; `peer` is its key as the tunnel proved it.
    /// A `local` one is a part of this process: it sends `apply`'s typed
    /// requests and takes `nextDeliveries` instead of lines.
    /// `versioned`: the peer must begin with `VERSION` (peers over the
    /// tunnel do; tests of the rest of the protocol need not).
    public func open(_ connection: Connection, peer: String, local: Bool = false, versioned: Bool = false) {
        var session = Session(peer: peer)
        session.local = local
        session.awaitingVersion = versioned && !local
        sessions[connection] = session
    }

    public func close(_ connection: Connection) {
        guard let session = sessions.removeValue(forKey: connection) else { return }
        acksDue.remove(connection)
        subscribing.remove(connection)
        if let name = session.durable, durableOwners[name] == connection { durableOwners[name] = nil }
        // Its pending publications are still stored at the next commit (the
        // watermark already counts them); their resend is then a duplicate.
        ready.remove(connection)
    }

    /// One stream message from a connection: request lines.
    public func receive(_ bytes: [UInt8], from connection: Connection) {
        guard sessions[connection] != nil else { return }
        for line in EventLines.split(bytes) { handle(line, from: connection) }
        settlePlainSubscription(connection)
        if sessions[connection]?.hasOutput == true { ready.insert(connection) }
    }

    private func handle(_ line: ArraySlice<UInt8>, from connection: Connection) {
        guard let wrongVersion = sessions[connection]?.wrongVersion, !wrongVersion else { return }
        if sessions[connection]!.awaitingVersion {
            sessions[connection]!.awaitingVersion = false
            let ours = EventRequest.protocolVersion
            guard case .version(let theirs)? = try? EventRequest.parse(line), theirs == ours else {
                // An older node sends no VERSION; a newer one another number.
                let theirs = (try? EventRequest.parse(line)).flatMap { if case .version(let v) = $0 { v } else { nil } }
                sessions[connection]!.wrongVersion = true
                sessions[connection]!.replies.append(EventReply.error(sequence: 0, reason:
                    "this hub speaks event protocol \(ours) and this node \(theirs.map(String.init) ?? "an older one"): run the same pilot version on both").line)
                return
            }
            sessions[connection]!.replies.append(EventReply.version(ours).line)
            return
        }
        let request: EventRequest
        do { request = try EventRequest.parse(line, limits: options.limits, topics: &topics) } catch {
            statistics.refused += 1
            sessions[connection]?.replies.append(EventReply.error(sequence: error.sequence, reason: error.reason).line)
            // Acknowledged as handled: it will never be taken, and the
            // publisher's spool must not stall behind it.
            if error.sequence > 0, let due = sessions[connection]?.ackDue {
                sessions[connection]?.ackDue = max(due, error.sequence)
                acksDue.insert(connection)
            }
            return
        }
        apply(request, from: connection)
    }

    /// One request as a value: what a line becomes once parsed, or what a
    /// part of this process asks directly. A publication's payload must
    /// have been checked (`EventMessage.validate`).
    public func apply(_ request: EventRequest, from connection: Connection) {
        guard sessions[connection] != nil else { return }
        defer { if sessions[connection]?.hasOutput == true { ready.insert(connection) } }
        switch request {
        case .version:
            break // only the first line may say it
        case .epoch(let epoch):
            sessions[connection]?.epoch = epoch
        case .ping:
            sessions[connection]?.replies.append(EventReply.pong.line)
        case let .publish(sequence, topic, payload):
            // Fields, not a copy of the session (which would retain each of its queues).
            guard let local = sessions[connection]?.local else { return }
            if !local, let authorize, let reason = authorize(connection, topic, payload) {
                statistics.refused += 1
                statistics.refusedAuthority += 1
                sessions[connection]!.replies.append(EventReply.error(sequence: sequence, reason: "\(topic): \(reason)").line)
                // Handled: never taken, and the publisher's spool must not stall behind it.
                if sequence > 0 {
                    sessions[connection]!.ackDue = max(sessions[connection]!.ackDue, sequence)
                    acksDue.insert(connection)
                }
                return
            }
            let publisher = sessions[connection]!.publisher
            if sequence > 0 {
                if sequence <= watermarks[publisher] ?? 0 {
                    statistics.duplicates += 1
                } else {
                    watermarks[publisher] = sequence
                    pending.append((connection, EventMessage(topic: topic, payload: payload, publisher: publisher, sequence: sequence)))
                }
                sessions[connection]!.ackDue = max(sessions[connection]!.ackDue, sequence)
                acksDue.insert(connection)
            } else {
                pending.append((connection, EventMessage(topic: topic, payload: payload, publisher: publisher, sequence: 0)))
            }
        case let .subscribe(filter, durable):
            subscribe(connection, filter, durable: durable)
        case .unsubscribe(let filter):
            sessions[connection]?.filters.removeAll { $0 == filter }
            if sessions[connection]?.filters.isEmpty == true { subscribing.remove(connection) }
            if let name = sessions[connection]?.durable {
                cursors[name]?.filters.removeAll { $0 == filter }
                dirtyCursors.insert(name)
            }
            sessions[connection]?.replies.append(EventReply.unsubscribed(filter).line)
        case .resume(let after):
            // Once per connection, and only from a peer: counting reads the log.
            guard let session = sessions[connection], !session.local, !session.resumed else { return }
            sessions[connection]!.resumed = true
            sessions[connection]!.resumeAfter = after
        case .ack(let id):
            guard let name = sessions[connection]?.durable, let cursor = cursors[name] else { return }
            let acked = min(id, sessions[connection]!.position)
            if acked > cursor.position {
                cursors[name]!.position = acked
                dirtyCursors.insert(name)
            }
        }
    }

    private func subscribe(_ connection: Connection, _ filter: TopicFilter, durable: String?) {
        guard var session = sessions[connection] else { return }
        defer { sessions[connection] = session }
        if let durable, session.durable != durable {
            guard session.durable == nil else {
                session.replies.append(EventReply.error(sequence: 0, reason: "this connection is already the durable subscriber \(session.durable!)").line)
                return
            }
            if let previous = durableOwners[durable], previous != connection {
                // The newest connection under a name takes over (a restarted subscriber).
                sessions[previous]?.durable = nil
                sessions[previous]?.filters = []
                subscribing.remove(previous)
                sessions[previous]?.replies.append(EventReply.error(sequence: 0, reason: "durable subscriber \(durable) was taken over by a new connection").line)
                ready.insert(previous)
            }
            durableOwners[durable] = connection
            let cursor = cursors[durable] ?? EventLog.Cursor(position: log.lastID, filters: [])
            cursors[durable] = cursor
            session.durable = durable
            session.position = cursor.position
            session.replaying = true
            session.queue = []
            session.head = 0
            session.queuedBytes = 0
        }
        if !session.filters.contains(filter) {
            guard session.filters.count < options.filtersPerConnection else {
                session.replies.append(EventReply.error(sequence: 0, reason: "too many subscriptions on one connection (at most \(options.filtersPerConnection))").line)
                return
            }
            session.filters.append(filter)
            subscribing.insert(connection)
        }
        if let name = session.durable, cursors[name]?.filters.contains(filter) == false {
            cursors[name]!.filters.append(filter)
            dirtyCursors.insert(name)
        }
        session.replies.append(EventReply.subscribed(filter).line)
        if session.durable == nil, !session.local { session.positionDue = true }
    }

    /// The next frame for a connection (replies first, then messages), at
    /// most about `maxBytes`; nil when it has nothing to send.
    public func nextFrame(for connection: Connection, maxBytes: Int = 60_000) -> [UInt8]? {
        guard var session = sessions[connection] else {
            ready.remove(connection)
            return nil
        }
        sessions[connection] = nil
        defer {
            if !session.hasOutput { ready.remove(connection) }
            sessions[connection] = session
        }
        var frame: [UInt8] = []
        for reply in session.replies {
            frame.append(contentsOf: reply.utf8)
            frame.append(0x0A)
        }
        session.replies = []
        if session.droppedUnreported > 0 {
            frame.append(contentsOf: EventReply.dropped(session.droppedUnreported).line.utf8)
            frame.append(0x0A)
            session.droppedUnreported = 0
        }
        while session.head < session.queue.count, frame.count < maxBytes {
            session.queuedBytes -= session.queue[session.head].count
            frame.append(contentsOf: session.queue[session.head])
            frame.append(0x0A)
            session.head += 1
            statistics.delivered += 1
        }
        if session.head == session.queue.count {
            session.queue = []
            session.head = 0
        }
        if session.queued == 0, session.replaying, frame.count < maxBytes {
            replay(&session, into: &frame, maxBytes: maxBytes)
        }
        return frame.isEmpty ? nil : frame
    }

    private func replay(_ session: inout Session, into frame: inout [UInt8], maxBytes: Int) {
        let entries: [EventLog.Entry]
        do { entries = try log.read(after: session.position, limit: options.replayBatch) } catch { return } // retried at the next frame
        for entry in entries {
            guard frame.count < maxBytes else { return }
            session.position = entry.id
            guard session.filters.contains(where: { $0.matches(entry.message.topic) }) else { continue }
            frame.append(contentsOf: EventReply.messageBytes(id: entry.id, entry.message))
            frame.append(0x0A)
            statistics.delivered += 1
            statistics.replayed += 1
        }
        if entries.count < options.replayBatch, session.position >= (entries.last?.id ?? session.position) {
            session.position = max(session.position, log.lastID)
            session.replaying = false // caught up: live messages queue from here
        }
    }

    /// Applies retention (a bounded step) and returns one line per durable
    /// subscriber that lost messages, for the log.
    public func maintain(now: Int64) -> [String] {
        let removed: [(id: UInt64, topic: Topic?)]
        do { removed = try log.prune(now: now) } catch { return ["cannot apply retention to the event log: \(error)"] }
        guard let last = removed.last?.id else { return [] }
        var lost: [String: Int] = [:]
        for (name, cursor) in cursors where cursor.position < last {
            let count = removed.filter { entry in
                entry.id > cursor.position && (entry.topic.map { topic in cursor.filters.contains { $0.matches(topic) } } ?? true)
            }.count
            cursors[name]!.position = last
            dirtyCursors.insert(name)
            if count > 0 { lost[name] = count }
        }
        for (connection, session) in sessions where session.durable != nil && session.position < last {
            sessions[connection]!.position = last
            if let count = lost[session.durable!] {
                sessions[connection]!.droppedUnreported += count
                ready.insert(connection)
            }
        }
        statistics.droppedRetention += lost.values.reduce(0, +)
        return lost.sorted { $0.key < $1.key }.map { name, count in
            "retention bound reached: \(count) messages dropped before durable subscriber \(name) read them"
        }
    }

    public struct CommitError: Error, CustomStringConvertible {
        public var reason: String
        /// Connections whose publications were not stored (reset them, so
        /// their publishers send them again).
        public var connections: [Connection]
        public var description: String { reason }
    }
}
