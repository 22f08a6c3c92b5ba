public import PilotCore
public import PilotCrypto

/// The node directory as pure state: who is registered under which name,
/// address and tags, and who is online. Time is passed in (Unix ms); the
/// service persists the records it returns before answering.
public struct Directory: Sendable {
    public struct Timing: Sendable {
        public var offlineAfterMs: Int64
        public init(offlineAfterMs: Int64 = 120_000) { self.offlineAfterMs = offlineAfterMs }
    }

    public let network: UInt16
    public let timing: Timing
    /// When this process started: until a full offline window has passed,
    /// a node not heard from since is `unknown`, not `offline`.
    public let startedAt: Int64

    private var records: [PublicKey: NodeRecord] = [:]
    private var byHostname: [String: PublicKey] = [:]
    private var byAddress: [Address: PublicKey] = [:]
    /// Every address, ascending (addresses are never taken back), so that a
    /// page of a search starts where the last one ended.
    private var ordered: [Address] = []
    private var nextNode: UInt32 = 1
    private var lastSeen: [PublicKey: Int64] = [:]
    private var reported: [PublicKey: Presence] = [:]
    /// When each listed node's presence may next change by itself (its
    /// last sight plus the offline window): a sweep looks at those due,
    /// not at every node every second.
    private var presenceDue = DeadlineQueue<PublicKey>()

    public init(network: UInt16 = 1, timing: Timing = Timing(), records: [NodeRecord] = [], now: Int64) {
        self.network = network
        self.timing = timing
        startedAt = now
        for record in records {
            self.records[record.publicKey] = record
            byAddress[record.address] = record.publicKey
            if record.isListed { byHostname[Self.nameKey(record.hostname)] = record.publicKey }
            if record.address.network == network { nextNode = max(nextNode, record.address.node &+ 1) }
            reported[record.publicKey] = .unknown
            if record.isListed { presenceDue.schedule(record.publicKey, at: now + timing.offlineAfterMs) }
        }
        ordered = byAddress.keys.sorted()
    }

    public var count: Int { records.values.filter(\.isListed).count }

    public func record(for key: PublicKey) -> NodeRecord? { records[key] }

    // MARK: Writes

    /// Registers (or re-registers) a key under a hostname. The same key
    /// always gets its address back; a hostname belongs to the first key
    /// that claimed it.
    public mutating func register(
        key: PublicKey, hostname: String, tags: [String], endpoints: [String], now: Int64
    ) throws(RegistryError) -> (record: NodeRecord, events: [PresenceEvent]) {
        let name: String
        do { name = try Hostname.validate(hostname) } catch { throw .badRequest(error.description) }
        let tags = try Tags.validate(tags)
        let endpoints = try Self.validateEndpoints(endpoints)
        try claim(name, for: key)

        var record: NodeRecord
        if var existing = records[key] {
            if existing.isListed, Self.nameKey(existing.hostname) != Self.nameKey(name) {
                byHostname[Self.nameKey(existing.hostname)] = nil
            }
            existing.hostname = name
            existing.tags = tags
            existing.endpoints = endpoints
            record = existing
        } else {
            guard nextNode != 0 else { throw .badRequest("this network has no free addresses") }
            record = NodeRecord(publicKey: key, address: Address(network: network, node: nextNode), hostname: name,
                                tags: tags, endpoints: endpoints, registeredAt: now / 1000)
            nextNode &+= 1
            byAddress[record.address] = key
            // New addresses come last in their network; a search in order holds anyway.
            ordered.insert(record.address, at: firstIndex(after: record.address))
        }
        records[key] = record
        byHostname[Self.nameKey(name)] = key
        return (record, seen(key, now: now))
    }

    public mutating func heartbeat(key: PublicKey, now: Int64) throws(RegistryError) -> [PresenceEvent] {
        guard let record = records[key], record.isListed else { throw .notRegistered }
        return seen(key, now: now)
    }

    public mutating func setTags(key: PublicKey, tags: [String]) throws(RegistryError) -> NodeRecord {
        guard var record = records[key], record.isListed else { throw .notRegistered }
        record.tags = try Tags.validate(tags)
        records[key] = record
        return record
    }

    public mutating func setHostname(key: PublicKey, hostname: String) throws(RegistryError) -> NodeRecord {
        guard let record = records[key], record.isListed else { throw .notRegistered }
        return try register(key: key, hostname: hostname, tags: record.tags, endpoints: record.endpoints, now: lastSeen[key] ?? 0).record
    }

    /// The node leaves the listing; its key keeps its address for a return.
    public mutating func deregister(key: PublicKey) throws(RegistryError) -> NodeRecord {
        guard var record = records[key], record.isListed else { throw .notRegistered }
        byHostname[Self.nameKey(record.hostname)] = nil
        record.hostname = ""
        record.tags = []
        records[key] = record
        lastSeen[key] = nil
        reported[key] = nil
        presenceDue.remove(key)
        return record
    }

    /// The operator frees a hostname (a reinstalled host has a new key).
    public mutating func revoke(hostname: String) throws(RegistryError) -> NodeRecord {
        guard let key = byHostname[Self.nameKey(hostname)] else { throw .notFound("named '\(hostname)'") }
        return try deregister(key: key)
    }

    // MARK: Presence

    public func presence(of key: PublicKey, now: Int64) -> Presence {
        if let seen = lastSeen[key] {
            return now - seen < timing.offlineAfterMs ? .online : .offline
        }
        return now - startedAt < timing.offlineAfterMs ? .unknown : .offline
    }

    /// Presence changes since the last sweep; call it about once a second.
    /// It costs the nodes whose window ran out, not the directory's size.
    public mutating func sweep(now: Int64) -> [PresenceEvent] {
        var events: [PresenceEvent] = []
        for key in presenceDue.takeDue(now: now) {
            guard let record = records[key], record.isListed else { continue }
            let current = presence(of: key, now: now)
            if reported[key] != current {
                reported[key] = current
                if current != .unknown { events.append(PresenceEvent(address: record.address, hostname: record.hostname, presence: current)) }
            }
        }
        return events.sorted { $0.address < $1.address }
    }

    private mutating func seen(_ key: PublicKey, now: Int64) -> [PresenceEvent] {
        lastSeen[key] = now
        presenceDue.schedule(key, at: now + timing.offlineAfterMs)
        guard reported[key] != .online, let record = records[key] else { return [] }
        reported[key] = .online
        return [PresenceEvent(address: record.address, hostname: record.hostname, presence: .online)]
    }

    // MARK: Reads

    public func view(_ key: PublicKey, now: Int64) -> NodeView? {
        guard let record = records[key], record.isListed else { return nil }
        return NodeView(record: record, presence: presence(of: key, now: now), lastSeen: lastSeen[key])
    }

    public func lookup(hostname: String, now: Int64) -> NodeView? {
        byHostname[Self.nameKey(hostname)].flatMap { view($0, now: now) }
    }

    public func lookup(address: Address, now: Int64) -> NodeView? {
        byAddress[address].flatMap { view($0, now: now) }
    }

    /// `tag:NAME` matches a tag exactly; anything else is a case-insensitive
    /// hostname substring; empty lists everyone. In address order, from
    /// after `after`, at most `limit`: a page costs its own size, not the
    /// directory's.
    public func search(_ query: String, onlineOnly: Bool, now: Int64, after: Address? = nil, limit: Int = .max) -> [NodeView] {
        let matches: (NodeRecord) -> Bool
        if query.hasPrefix("tag:") {
            let tag = String(query.dropFirst(4))
            matches = { $0.tags.contains(tag) }
        } else if query.isEmpty {
            matches = { _ in true }
        } else {
            let needle = query.lowercased()
            matches = { $0.hostname.lowercased().contains(needle) }
        }
        var found: [NodeView] = []
        for address in ordered[(after.map(firstIndex(after:)) ?? 0)...] {
            guard found.count < limit else { break }
            guard let key = byAddress[address], let record = records[key], record.isListed, matches(record),
                  let view = view(key, now: now), !onlineOnly || view.presence == .online else { continue }
            found.append(view)
        }
        return found
    }

    /// The index of the first address above `address` in `ordered`.
    private func firstIndex(after address: Address) -> Int {
        var low = 0, high = ordered.count
        while low < high {
            let middle = (low + high) / 2
            if ordered[middle] <= address { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: Helpers

    private func claim(_ name: String, for key: PublicKey) throws(RegistryError) {
        if let owner = byHostname[Self.nameKey(name)], owner != key {
            throw .hostnameTaken(name, ownerFingerprint: owner.fingerprint)
        }
    }

    static func nameKey(_ name: String) -> String { name.lowercased() }

    static func validateEndpoints(_ endpoints: [String]) throws(RegistryError) -> [String] {
        guard endpoints.count <= 8 else { throw .badRequest("too many endpoints: \(endpoints.count), at most 8") }
        var result: [String] = []
        for text in endpoints {
            do throws(ParseError) { result.append(try Endpoint(parsing: text).description) } catch { throw .badRequest(error.description) }
        }
        return result
    }
}
