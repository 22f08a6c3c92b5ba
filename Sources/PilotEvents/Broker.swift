public import PilotCore

/// The event-stream broker as pure state: subscriptions by filter, fan-out
/// to every matching subscriber, and a bounded queue per subscriber so a
/// slow consumer never stalls the broker or the others (its oldest
/// undelivered messages are dropped and counted). Durable subscribers and
/// the on-disk log build on this with the hub's store.
public struct Broker<Subscriber: Hashable & Sendable>: Sendable {
    public struct Limits: Sendable {
        public var queuePerSubscriber = 10_000
        public var filtersPerSubscriber = 64
        public init() {}
    }

    public let limits: Limits
    private var filters: [Subscriber: [TopicFilter]] = [:]
    private var queues: [Subscriber: [EventMessage]] = [:]
    private var heads: [Subscriber: Int] = [:]
    public private(set) var dropped: [Subscriber: Int] = [:]
    public private(set) var published = 0

    public init(limits: Limits = Limits()) { self.limits = limits }

    public mutating func subscribe(_ subscriber: Subscriber, to filter: TopicFilter) throws(BrokerError) {
        var list = filters[subscriber] ?? []
        guard !list.contains(filter) else { return }
        guard list.count < limits.filtersPerSubscriber else { throw .tooManyFilters(limits.filtersPerSubscriber) }
        list.append(filter)
        filters[subscriber] = list
        if queues[subscriber] == nil {
            queues[subscriber] = []
            heads[subscriber] = 0
        }
    }

    public mutating func unsubscribe(_ subscriber: Subscriber, from filter: TopicFilter) {
        filters[subscriber]?.removeAll { $0 == filter }
    }

    /// Forgets a subscriber entirely (its connection closed).
    public mutating func remove(_ subscriber: Subscriber) {
        filters[subscriber] = nil
        queues[subscriber] = nil
        heads[subscriber] = nil
        dropped[subscriber] = nil
    }

    /// Queues `message` for every subscriber with a matching filter (once per
    /// subscriber, however many of its filters match). Returns who got it.
    @discardableResult
    public mutating func publish(_ message: EventMessage) -> [Subscriber] {
        published += 1
        var receivers: [Subscriber] = []
        for (subscriber, list) in filters where list.contains(where: { $0.matches(message.topic) }) {
            enqueue(message, for: subscriber)
            receivers.append(subscriber)
        }
        return receivers
    }

    /// Takes up to `limit` queued messages for a subscriber, oldest first.
    public mutating func take(for subscriber: Subscriber, limit: Int = .max) -> [EventMessage] {
        guard let queue = queues[subscriber], let head = heads[subscriber], head < queue.count else { return [] }
        let end = head + min(limit, queue.count - head)
        let batch = Array(queue[head..<end])
        heads[subscriber] = end
        if end == queue.count {
            queues[subscriber] = []
            heads[subscriber] = 0
        }
        return batch
    }

    public func queued(for subscriber: Subscriber) -> Int {
        (queues[subscriber]?.count ?? 0) - (heads[subscriber] ?? 0)
    }

    private mutating func enqueue(_ message: EventMessage, for subscriber: Subscriber) {
        var queue = queues[subscriber] ?? []
        var head = heads[subscriber] ?? 0
        if queue.count - head >= limits.queuePerSubscriber {
            head += 1 // drop the oldest undelivered message for this slow consumer
            dropped[subscriber, default: 0] += 1
        }
        if head > 4096 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        queue.append(message)
        queues[subscriber] = queue
        heads[subscriber] = head
    }
}

public enum BrokerError: Error, Equatable, CustomStringConvertible {
    case tooManyFilters(Int)
    public var description: String {
        switch self {
        case .tooManyFilters(let limit): "too many subscriptions on one connection (at most \(limit))"
        }
    }
}
