public import PilotCore

/// The control requests every node answers, as the CLI sends them.

public struct StatusRequest: ControlRequest {
    public static let commands = ["status"]
    public init() {}
    public init(command: String, fields: JSONValue) {}
}

/// `pilot peers [--search QUERY] [--online]`: a search of the registry.
public struct PeersRequest: ControlRequest {
    public static let commands = ["peers"]
    public var search: String
    public var onlineOnly: Bool
    public init(command: String, fields: JSONValue) {
        search = fields["search"]?.stringValue ?? ""
        onlineOnly = fields["online"] == .bool(true)
    }
}

/// The hub that publish and subscribe use when none is given (`Node.hub()`).
public struct HubRequest: ControlRequest {
    public static let commands = ["hub"]
    public init(command: String, fields: JSONValue) {}
}

/// One node of the directory, by hostname or address.
public struct LookupRequest: ControlRequest {
    public static let commands = ["lookup"]
    public var hostname: String?
    public var address: String?
    public init(command: String, fields: JSONValue) {
        hostname = fields["hostname"]?.stringValue
        address = fields["address"]?.stringValue
    }
}

/// `pilot ping HOST`: one echo round trip, or `stream` echoes over a reliable stream.
public struct PingRequest: ControlRequest {
    public static let commands = ["ping"]
    public var host: String
    public var streamCount: Int?
    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        guard let host = fields["host"]?.stringValue, !host.isEmpty else { throw ControlRequestError("ping needs a host") }
        self.host = host
        if let stream = fields["stream"] {
            guard let count = stream.int64Value, (1...1_000_000).contains(count) else {
                throw ControlRequestError("a stream ping needs a count from 1 to 1000000")
            }
            streamCount = Int(count)
        }
    }
}

/// The trust verbs: `handshake HOST WHY`, `approve`, `reject`, `untrust`, `pending`, `trust`.
public struct TrustRequest: ControlRequest {
    public enum Action: String, Sendable, CaseIterable { case handshake, approve, reject, untrust, pending, trust }
    public static let commands = Action.allCases.map(\.rawValue)
    public var action: Action
    public var host: String
    public var justification: String
    /// approve: topic filters granted beyond the node's own.
    public var publish: [String]?
    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        guard let action = Action(rawValue: command) else { throw ControlRequestError("unknown trust command '\(command)'") }
        self.action = action
        host = fields["host"]?.stringValue ?? ""
        justification = fields["why"]?.stringValue ?? ""
        if case .array(let filters)? = fields["publish"] {
            publish = try filters.map { item throws(ControlRequestError) in
                guard let text = item.stringValue, (try? TopicFilter(text)) != nil else { throw ControlRequestError("--publish: '\(item.stringValue ?? "?")' is not a topic filter") }
                return text
            }
        }
        if action == .handshake, host.isEmpty { throw ControlRequestError("handshake needs a host") }
    }
}

/// `pilot set-tags TAG...`: replaces this node's tags at the registry.
public struct SetTagsRequest: ControlRequest {
    public static let commands = ["set-tags"]
    public var tags: [String]
    public init(command: String, fields: JSONValue) throws(ControlRequestError) {
        guard case .array(let items)? = fields["tags"] else { throw ControlRequestError("set-tags needs a list of tags") }
        tags = items.compactMap(\.stringValue)
    }
}
