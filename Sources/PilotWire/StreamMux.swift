public import PilotCrypto
internal import PilotCore

/// Reliable, ordered connections between virtual ports, multiplexed over
/// the tunnels, as a pure state machine. Each connection is a
/// `ReliableChannel`; its segments travel as overlay messages of kind
/// `stream`:
///
///     overlay header (kind 2, ports) | connection id u32 | flags u8 | reliable segment
///
/// Flags: 1 open (first segments of a connection the initiator opened),
/// 2 reset (the segment is a `StreamReset` instead), 4 coded (the reset's
/// first byte is its code). A connection is named
/// by the peer's key and the initiator's random id. Which ports accept
/// whom is the caller's policy (`accepts`): only trusted peers reach ports
/// other than 7 and 444.
public struct StreamMux: Sendable {
    public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
        public var peer: PublicKey
        public var id: UInt32
        public var description: String { "\(peer.fingerprint.prefix(15))/\(id)" }
    }

    public enum Event: Equatable, Sendable {
        case accepted(ConnectionID, port: UInt16)
        case message(ConnectionID, [UInt8])
        case reset(ConnectionID, StreamReset)
    }

    public struct Outgoing: Equatable, Sendable {
        public var peer: PublicKey
        public var payload: [UInt8]
    }

    struct Connection: Sendable {
        var channel: ReliableChannel
        var localPort: UInt16
        var remotePort: UInt16
        var initiatedHere: Bool
        var lastHeard: Int64
        var heardFromPeer = false
        /// Since when data has been unacknowledged with nothing heard.
        var waitingSince: Int64?
    }

    static let openFlag: UInt8 = 1
    static let resetFlag: UInt8 = 2
    static let codedFlag: UInt8 = 4

    public var configuration = ReliableChannel.Configuration()
    public var idleTimeout: Int64 = 120_000_000
    /// A connection with data unacknowledged that hears nothing at all from
    /// the peer this long is reset ("the peer stopped answering"), like
    /// TCP's user timeout: its owner reconnects, looking the peer up again
    /// (a hub restarted elsewhere), instead of resending into the void.
    /// Longer than the tunnel's own recovery (a new handshake after 5 s).
    public var unansweredTimeout: Int64 = 20_000_000
    /// Connections held at most, in all and with one peer. Storage grows
    /// with the connections in use; these are ceilings against a peer (or
    /// many keys) opening connections until memory runs out. A hub holds
    /// one connection per publishing node, so the total is sized like the
    /// peer table (`TunnelEndpoint` sets it to `--max-peers`).
    public var maxConnections = 100_000
    public var maxConnectionsPerPeer = 256
    private var connections: [ConnectionID: Connection] = [:]
    private var connectionsPerPeer: [PublicKey: Int] = [:]
    /// Connections refused when they opened, by code, since the start (for status).
    public private(set) var refused: [String: Int] = [:]
    public var connectionCount: Int { connections.count }
    var connectionIDs: Dictionary<ConnectionID, Connection>.Keys { connections.keys }
    /// When each connection next needs a poll: its channel's deadline (ack,
    /// retransmission, new data), or its idle or unanswered timeout.
    private var schedule = DeadlineQueue<ConnectionID>()
    /// The latest time the owner gave (a send, which takes none, is due then).
    private var latest: Int64 = 0
    private var listening: Set<UInt16> = []
    private var idState: UInt64

    public init(idSeed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        idState = idSeed
        // The tunnel carries at most 1,280-byte datagrams: overlay header,
        // connection header and tunnel overhead come off the segment size.
        configuration.maxSegmentBytes = OverlayMessage.maxDatagramData - 5
    }

    public mutating func listen(on port: UInt16) { listening.insert(port) }

    public func isOpen(_ connection: ConnectionID) -> Bool { connections[connection] != nil }

    /// Opens a connection to `port` of `peer`; messages can be sent at once.
    public mutating func open(to peer: PublicKey, port: UInt16, now: Int64) throws(ReliableChannelError) -> ConnectionID {
        latest = max(latest, now)
        guard connections.count < maxConnections else { throw .tooManyConnections(limit: maxConnections) }
        guard connectionsPerPeer[peer, default: 0] < maxConnectionsPerPeer else { throw .tooManyConnections(limit: maxConnectionsPerPeer) }
        var id: ConnectionID
        repeat {
            idState &+= 0x9E37_79B9_7F4A_7C15
            id = ConnectionID(peer: peer, id: UInt32(truncatingIfNeeded: (idState ^ (idState >> 29)) &* 0xBF58_476D_1CE4_E5B9 >> 32))
        } while connections[id] != nil || id.id == 0
        insert(Connection(channel: ReliableChannel(configuration: configuration), localPort: 0xFF00 | UInt16(id.id & 0xFF),
                          remotePort: port, initiatedHere: true, lastHeard: now), as: id)
        reschedule(id)
        return id
    }

    /// Queues a message; it goes out at the connection's next poll (at once
    /// with `poll(_:now:)`, else at the next `poll(now:)`).
    public mutating func send(_ message: [UInt8], on connection: ConnectionID) throws(ReliableChannelError) {
        guard connections[connection] != nil else { throw .sendBufferFull }
        try connections[connection]!.channel.send(message)
        schedule.schedule(connection, noLaterThan: latest)
    }

    public func canSend(on connection: ConnectionID) -> Bool { connections[connection]?.channel.canSend ?? false }
    public func queuedMessages(on connection: ConnectionID) -> Int { connections[connection]?.channel.queuedMessages ?? 0 }
    public func isIdle(_ connection: ConnectionID) -> Bool { connections[connection]?.channel.isIdle ?? true }
    public func statistics(_ connection: ConnectionID) -> ReliableChannel.Statistics? { connections[connection]?.channel.statistics }

    /// Closes a connection, telling the peer.
    /// The owner closes a connection, telling the peer why.
    public mutating func reset(_ connection: ConnectionID, reason: String) -> [Outgoing] {
        reset(connection, StreamReset(.closed, reason))
    }

    mutating func reset(_ connection: ConnectionID, _ why: StreamReset) -> [Outgoing] {
        guard let state = remove(connection) else { return [] }
        return [Outgoing(peer: connection.peer, payload: Self.frame(state, connection.id, flags: Self.resetFlag | Self.codedFlag, why.body))]
    }

    /// An overlay message of kind `stream` from `peer`. `accepts(port)` says
    /// whether this peer may open a connection to that port.
    public mutating func receive(_ message: OverlayMessage, from peer: PublicKey, now: Int64,
                                 accepts: (UInt16) -> Bool) -> (outgoing: [Outgoing], events: [Event]) {
        latest = max(latest, now)
        guard message.kind == .stream, message.data.count >= 5 else { return ([], []) }
        let id = UInt32(message.data[0]) << 24 | UInt32(message.data[1]) << 16 | UInt32(message.data[2]) << 8 | UInt32(message.data[3])
        let flags = message.data[4]
        let body = Array(message.data[5...])
        let key = ConnectionID(peer: peer, id: id)
        if flags & Self.resetFlag != 0 {
            guard remove(key) != nil else { return ([], []) }
            return ([], [.reset(key, StreamReset(body: body[...], coded: flags & Self.codedFlag != 0))])
        }
        var events: [Event] = []
        if connections[key] == nil {
            // Only an opening segment creates a connection; anything else for
            // an unknown connection is stale, and is told so.
            let port = message.destinationPort
            let refuse: StreamReset? =
                flags & Self.openFlag == 0 ? StreamReset(.noSuchConnection, "no such connection") :
                !listening.contains(port) ? StreamReset(.portClosed, "port \(port) is closed") :
                !accepts(port) ? StreamReset(.notTrusted, "not trusted for port \(port)") :
                connections.count >= maxConnections ? StreamReset(.tooManyConnections, "too many connections (limit \(maxConnections))") :
                connectionsPerPeer[peer, default: 0] >= maxConnectionsPerPeer ?
                    StreamReset(.tooManyConnections, "too many connections from this peer (limit \(maxConnectionsPerPeer))") : nil
            if let refuse {
                // Stale segments after a restart are routine; count only
                // what this side turned away.
                if flags & Self.openFlag != 0 { refused[refuse.code.label, default: 0] += 1 }
                let frame = OverlayMessage(kind: .stream, sourcePort: message.destinationPort, destinationPort: message.sourcePort,
                                           data: id.bigEndianBytes + [Self.resetFlag | Self.codedFlag] + refuse.body)
                return ([Outgoing(peer: peer, payload: frame.encoded)], [])
            }
            insert(Connection(channel: ReliableChannel(configuration: configuration), localPort: message.destinationPort,
                              remotePort: message.sourcePort, initiatedHere: false, lastHeard: now), as: key)
            events.append(.accepted(key, port: message.destinationPort))
        }
        connections[key]!.lastHeard = now
        connections[key]!.heardFromPeer = true
        connections[key]!.waitingSince = nil
        do {
            for delivered in try connections[key]!.channel.receive(body, now: now) { events.append(.message(key, delivered)) }
        } catch {
            // A malformed segment is dropped; the connection carries on.
        }
        return (poll(key, now: now), events)
    }

    /// Segments due now on the connections whose deadline has come (new
    /// data, retransmissions, acks), and resets for connections silent past
    /// the idle timeout or unanswered past `unansweredTimeout`.
    public mutating func poll(now: Int64) -> (outgoing: [Outgoing], events: [Event]) {
        latest = max(latest, now)
        var outgoing: [Outgoing] = []
        var events: [Event] = []
        for key in schedule.takeDue(now: now) {
            guard let state = connections[key] else { continue }
            if now - state.lastHeard >= idleTimeout, state.channel.isIdle || now - state.lastHeard >= idleTimeout * 2 {
                let why = StreamReset(.idleTimeout, "idle timeout")
                outgoing += reset(key, why)
                events.append(.reset(key, why))
                continue
            }
            if let since = state.waitingSince, now - since >= unansweredTimeout {
                let reason = "the peer did not answer for \(unansweredTimeout / 1_000_000) s"
                let why = StreamReset(.unanswered, reason)
                outgoing += reset(key, why)
                events.append(.reset(key, why))
                continue
            }
            outgoing += poll(key, now: now)
        }
        return (outgoing, events)
    }

    /// The earliest time `poll` has work.
    public mutating func nextDeadline() -> Int64? { schedule.next() }

    /// Segments due now on one connection (after sending on it).
    public mutating func poll(_ key: ConnectionID, now: Int64) -> [Outgoing] {
        latest = max(latest, now)
        guard let state = connections[key] else { return [] }
        let segments = connections[key]!.channel.poll(now: now)
        if connections[key]!.waitingSince == nil, connections[key]!.channel.hasUnacknowledged { connections[key]!.waitingSince = now }
        reschedule(key)
        // Only until the peer has answered: a peer that restarted since then
        // must refuse the segments ("no such connection"), not take them
        // for a new connection that would wait for data sent long ago.
        let flags = state.initiatedHere && !state.heardFromPeer ? Self.openFlag : 0
        return segments.map { Outgoing(peer: key.peer, payload: Self.frame(state, key.id, flags: flags, $0)) }
    }

    private mutating func insert(_ connection: Connection, as key: ConnectionID) {
        connections[key] = connection
        connectionsPerPeer[key.peer, default: 0] += 1
    }

    private mutating func remove(_ key: ConnectionID) -> Connection? {
        guard let state = connections.removeValue(forKey: key) else { return nil }
        schedule.remove(key)
        let left = connectionsPerPeer[key.peer, default: 1] - 1
        connectionsPerPeer[key.peer] = left > 0 ? left : nil
        return state
    }

    /// Schedules `key`'s next poll: the earliest of its channel's deadline,
    /// its idle timeout and its unanswered timeout.
    private mutating func reschedule(_ key: ConnectionID) {
        guard let state = connections[key] else { return schedule.remove(key) }
        var at = state.lastHeard + (state.channel.isIdle ? idleTimeout : idleTimeout * 2)
        if let channel = state.channel.nextDeadline { at = min(at, channel) }
        if let since = state.waitingSince { at = min(at, since + unansweredTimeout) }
        schedule.schedule(key, at: at)
    }

    static func frame(_ state: Connection, _ id: UInt32, flags: UInt8, _ segment: [UInt8]) -> [UInt8] {
        OverlayMessage(kind: .stream, sourcePort: state.localPort, destinationPort: state.remotePort,
                       data: id.bigEndianBytes + [flags] + segment).encoded
    }
}
