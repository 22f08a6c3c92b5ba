public import PilotCore

/// What a subscription does with the hub's replies, as a pure state
/// machine: it is confirmed once the hub took every filter, refused if the
/// hub says no before that, passes `MSG` and `DROP` lines on without the
/// duplicates a resend brings (by publisher and sequence), and decides what
/// happens when its consumer cannot take more: a durable subscription
/// pauses (the hub keeps the rest for it), a plain one drops and says how
/// many when the consumer reads again. A plain one that reconnects tells
/// the hub where it was, so what it missed meanwhile comes as `DROP n`
/// too. The shell owns the connection.
public struct SubscriptionCore: Sendable {
    public enum Event: Equatable, Sendable {
        /// The hub took every filter: the subscription holds.
        case confirmed
        /// The hub refused before confirming: the end of this subscription.
        case refused(String)
        /// The hub reported a problem with a confirmed subscription.
        case warning(String)
        /// Lines for the consumer (`MSG` and `DROP`, each ending in a line feed).
        case deliver([UInt8])
        /// Durable and the consumer is full: close the connection and let the
        /// hub keep the rest until the consumer reads again.
        case pause
    }

    public let filters: Set<TopicFilter>
    public let durable: Bool
    public private(set) var isConfirmed = false
    public private(set) var duplicatesDiscarded = 0
    /// Plain subscriptions: messages dropped here while the consumer was full.
    public private(set) var droppedHere = 0
    /// The hub's log id up to which this subscription has had (or counted
    /// as dropped) every message: where a plain one resumes.
    public private(set) var position: UInt64 = 0
    private var confirmedFilters: Set<TopicFilter> = []
    /// A new connection's first reply must be the hub's VERSION.
    private var awaitingVersion = false
    private var duplicates = DuplicateFilter()

    public init(filters: [TopicFilter], durable: Bool) {
        self.filters = Set(filters)
        self.durable = durable
    }

    /// A new connection: the hub says its version, then confirms the filters again.
    public mutating func connected() {
        confirmedFilters = []
        awaitingVersion = true
    }

    /// What a subscription sends first on a connection: a plain one that
    /// had messages before also says where it was (after the filters, so an
    /// older hub's refusal of the line comes once they are confirmed).
    public func hello(durable name: String?) -> [UInt8] {
        var lines = [EventRequest.version(EventRequest.protocolVersion)] + filters.sorted { $0.description < $1.description }.map { EventRequest.subscribe($0, durable: name) }
        if !durable, position > 0 { lines.append(.resume(after: position)) }
        return Array(lines.map { $0.line + "\n" }.joined().utf8)
    }

    /// One stream message from the hub. `consumerHasRoom`: whether the
    /// consumer can take lines now.
    public mutating func received(_ bytes: [UInt8], consumerHasRoom: Bool) -> [Event] {
        var events: [Event] = []
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        /// The messages `out` stands for: its MSG lines and the counts of its DROP lines.
        var represented = 0
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            let line = bytes[start..<end]
            start = end + 1
            if line.isEmpty { continue }
            if awaitingVersion {
                awaitingVersion = false
                guard case .version(EventRequest.protocolVersion)? = try? EventReply.parse(line) else {
                    return events + [.refused("the hub speaks an older event protocol than this node (\(EventRequest.protocolVersion)): run the same pilot version on both")]
                }
                continue
            }
            if let message = MessageLine(line) {
                position = max(position, message.id)
                if message.sequence > 0, !duplicates.isNew(publisher: String(decoding: message.publisher, as: UTF8.self), sequence: message.sequence) {
                    duplicatesDiscarded += 1
                    continue
                }
                out.append(contentsOf: line)
                out.append(0x0A)
                represented += 1
                continue
            }
            switch try? EventReply.parse(line) {
            case .subscribed(let filter)?:
                confirmedFilters.insert(filter)
                if !isConfirmed, confirmedFilters == filters {
                    isConfirmed = true
                    events.append(.confirmed)
                }
            case let .error(_, reason)?:
                guard isConfirmed else { return events + [.refused(reason)] }
                events.append(.warning(reason))
            case .dropped(let count)?:
                out.append(contentsOf: EventReply.dropped(count).line.utf8)
                out.append(0x0A)
                represented += count
            case .position(let id)?:
                position = max(position, id)
            default:
                break
            }
        }
        guard !out.isEmpty else { return events }
        if consumerHasRoom {
            events.append(.deliver(out))
        } else if durable {
            // What arrived still goes (the consumer buffers it); the hub keeps the rest.
            events += [.deliver(out), .pause]
        } else {
            // The hub's own DROP lines are not lost: their counts join the one owed.
            droppedHere += represented
        }
        return events
    }

    /// The consumer can take lines again: the `DROP` line it is owed, if any.
    public mutating func consumerReady() -> [UInt8]? {
        guard droppedHere > 0 else { return nil }
        defer { droppedHere = 0 }
        return Array((EventReply.dropped(droppedHere).line + "\n").utf8)
    }
}
