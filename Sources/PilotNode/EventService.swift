public import Logging
public import NIOCore
public import PilotCore
public import PilotCrypto
public import PilotEvents
public import PilotWire
public import PilotTransport

/// The event stream on a node (virtual port 1002): the hub's broker over
/// its durable log (`STATE/events.db`), and the client side that publishes
/// through a spool per hub (`STATE/spool-HUB.db`) and holds subscriptions
/// for the CLI. Everything runs on the tunnel loop.
public final class EventService: @unchecked Sendable {
    public struct Options: Sendable {
        public var limits = EventMessage.Limits()
        public var retention = EventLog.Retention()
        public var spool = EventSpool.Limits()
        public var queuePerSubscriber = 200_000
        public init() {}
    }

    /// Where a hub is: its key and the endpoints to try.
    public struct HubAddress: Sendable {
        public var hostname: String
        public var key: PublicKey
        public var candidates: [Endpoint]
        public init(hostname: String, key: PublicKey, candidates: [Endpoint]) {
            self.hostname = hostname
            self.key = key
            self.candidates = candidates
        }
    }

    public typealias Resolve = @Sendable (_ hub: String) async throws -> HubAddress

    /// The one source of time for the event service and its forwarders and
    /// subscriptions: the log's timestamps (wall seconds) and the state
    /// machines' timers (monotonic microseconds). Injected for tests.
    public struct Clock: Sendable {
        public var wallSeconds: @Sendable () -> Int64
        public var monotonic: @Sendable () -> Int64
        public init(wallSeconds: @escaping @Sendable () -> Int64, monotonic: @escaping @Sendable () -> Int64) {
            self.wallSeconds = wallSeconds
            self.monotonic = monotonic
        }
        public static let system = Clock(wallSeconds: { WallClock.nowMilliseconds() / 1000 }, monotonic: { TunnelTime.current().now })
    }

    /// Who a hub session belongs to: a peer over the tunnel, or a part of
    /// this process (the aggregator's own subscription and alerts).
    enum Connection: Hashable, Sendable {
        case remote(StreamMux.ConnectionID)
        case local(Int)
    }

    /// A message as an in-process subscriber gets it: a value, its payload
    /// parsed at most once for all of them.
    public typealias Delivery = EventDelivery

    let tunnels: TunnelEndpoint
    let stateDirectory: String
    let options: Options
    let logger: Logger
    let resolve: Resolve
    let clock: Clock
    var loop: any EventLoop { tunnels.loop }
    let hub: EventHub<Connection>
    var commitScheduled = false
    /// The names this node answers to as a hub (its hostname): publishing or
    /// subscribing to itself goes straight to its own broker.
    public var selfNames: Set<String> = []
    let localName: String
    var nextLocal = 0
    var localSubscribers: [Int: @Sendable ([Delivery]) -> Void] = [:]
    var forwarders: [String: Forwarder] = [:]
    var maintenance: RepeatedTask?
    /// Set when the node stops: publications are refused from then on (on the loop).
    var stopping = false
    /// The last sequence the in-process publisher used.
    var localSequence: UInt64 = 0
    var subscriptions: [ObjectIdentifier: Subscription] = [:]
    var duplicatesDiscarded = 0

    /// A trusted peer's hostname and the topics granted beyond its own, by
    /// key (the trust book's); nil for a key it does not hold.
    public typealias Publishers = @Sendable (PublicKey) -> (hostname: String, grants: [String])?

    /// `publishers` set, the hub holds every peer to `TopicAuthority`; a
    /// peer it does not know publishes nothing that names a host.
    public init(tunnels: TunnelEndpoint, stateDirectory: String, options: Options, logger: Logger, clock: Clock = .system,
                publishers: Publishers? = nil, resolve: @escaping Resolve) throws {
        self.clock = clock
        self.tunnels = tunnels
        self.stateDirectory = stateDirectory
        self.options = options
        self.logger = logger
        self.resolve = resolve
        var hubOptions = EventHub<Connection>.Options()
        hubOptions.limits = options.limits
        hubOptions.queuePerSubscriber = options.queuePerSubscriber
        do {
            hub = try EventHub(log: EventLog(path: stateDirectory + "/events.db", retention: options.retention), options: hubOptions)
        } catch {
            throw EventServiceError("cannot open the event log \(stateDirectory)/events.db: \(error)")
        }
        if let publishers {
            hub.authorize = { connection, topic, payload in
                guard case .remote(let stream) = connection else { return nil }
                let known = publishers(stream.peer)
                let grants = known?.grants.compactMap { try? TopicFilter($0) } ?? []
                return TopicAuthority.refusal(topic: topic, payload: payload, hostname: known?.hostname ?? "an unknown node", grants: grants)
            }
        }
        localName = tunnels.identity.publicKey.base64 + "/local"
        // The in-process publisher, numbered within an epoch of this run.
        hub.open(.local(0), peer: localName, local: true)
        hub.apply(.epoch(Hex.encode(SecureRandom.bytes(8))), from: .local(0))
        tunnels.acceptStreams(on: OverlayMessage.eventStreamPort) { [self] event in self.hubEvent(event) }
        maintenance = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in self.tick() }
    }

    // MARK: The hub (connections from peers to our port 1002)

    func hubEvent(_ event: TunnelEndpoint.StreamServiceEvent) {
        switch event {
        case .accepted(let connection):
            hub.open(.remote(connection), peer: connection.peer.base64, versioned: true)
        case let .message(connection, bytes):
            hub.receive(bytes, from: .remote(connection))
            scheduleCommit()
            flush(.remote(connection))
        case .closed(let connection, _):
            hub.close(.remote(connection))
        }
    }

    /// Commits once per turn of the loop, so every publication that arrived
    /// in one burst of datagrams shares one transaction.
    func scheduleCommit() {
        guard !commitScheduled else { return }
        commitScheduled = true
        loop.execute { [self] in
            commitScheduled = false
            guard hub.needsCommit else { return }
            do throws(EventHub<Connection>.CommitError) { try hub.commit(now: clock.wallSeconds()) } catch {
                logger.error("event hub cannot store publications; the publishers will send them again", metadata: ["error": "\(error.reason)"])
                for case .remote(let connection) in error.connections { tunnels.resetStream(connection, reason: "the hub could not store the publications") }
            }
            for connection in hub.ready { flush(connection) }
        }
    }

    /// Sends what the hub has for a connection while its stream has room;
    /// continues when acknowledgements free space.
    func flush(_ connection: Connection) {
        switch connection {
        case .remote(let stream):
            guard tunnels.isStreamOpen(stream) else { return }
            while tunnels.queuedOnStream(stream) < 16, let frame = hub.nextFrame(for: connection) {
                tunnels.sendOnStream(frame, on: stream)
            }
            tunnels.whenStreamWritable(stream, hub.ready.contains(connection) ? { [self] in flush(connection) } : nil)
        case .local(let id):
            // Values straight from the hub: nothing encoded, nothing parsed.
            // (The in-process publisher has no handler: its acks need no reader.)
            let handler = localSubscribers[id]
            while let (deliveries, dropped) = hub.nextDeliveries(for: connection) {
                if dropped > 0 { logger.warning("an in-process subscriber lost messages", metadata: ["dropped": "\(dropped)"]) }
                if !deliveries.isEmpty { handler?(deliveries) }
            }
        }
    }

    /// The messages of a frame from a hub elsewhere.
    static func deliveries(in frame: [UInt8]) -> [Delivery] {
        EventLines.split(frame).compactMap { line in
            guard case .message(let id, let message)? = try? EventReply.parse(line) else { return nil }
            return Delivery(id: id, message: message)
        }
    }

    // MARK: Status

    public func status() async -> JSONObject {
        (try? await loop.submit { [self] () -> JSONObject in
            let s = hub.statistics
            var spools: [JSONValue] = []
            for (name, forwarder) in forwarders.sorted(by: { $0.key < $1.key }) {
                let transport = forwarder.connection.flatMap { tunnels.streamStatistics($0) }
                spools.append(.object(JSONObject([
                    ("segments", .number(Double(transport?.segmentsSent ?? 0))), ("retransmissions", .number(Double(transport?.retransmissions ?? 0))),
                    ("timeouts", .number(Double(transport?.timeouts ?? 0))),
                    ("hub", .string(name)), ("connected", .bool(forwarder.isConnected)),
                    ("spooled", .number(Double(forwarder.spool.count))), ("acknowledged", .number(Double(forwarder.spool.acknowledged))),
                    ("published", .number(Double(forwarder.spool.lastSequence))), ("resent", .number(Double(forwarder.resent))),
                    ("refused", .number(Double(forwarder.refused))), ("last_error", forwarder.lastError.map { .string($0) } ?? .null),
                ])))
            }
            return JSONObject([
                ("hub", .object(JSONObject([
                    ("connections", .number(Double(hub.connections))), ("stored", .number(Double(s.stored))),
                    ("log_messages", .number(Double(hub.log.count))), ("log_bytes", .number(Double(hub.log.storedBytes))),
                    ("duplicates", .number(Double(s.duplicates))), ("refused", .number(Double(s.refused))),
                    ("refused_authority", .number(Double(s.refusedAuthority))),
                    ("delivered", .number(Double(s.delivered))), ("replayed", .number(Double(s.replayed))),
                    ("dropped_slow", .number(Double(s.droppedSlow))), ("dropped_retention", .number(Double(s.droppedRetention))),
                    ("durable", .object(JSONObject(hub.durableNames.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) }))),
                ]))),
                ("spools", .array(spools)),
                ("subscriptions", .number(Double(subscriptions.count))),
                ("duplicates_discarded", .number(Double(duplicatesDiscarded))),
            ])
        }.get()) ?? JSONObject()
    }

    /// Opens a stream to a hub's port 1002 (found at the registry); the
    /// stream's messages go to `received`, the outcome to `completion`, both
    /// on the loop. Shared by the forwarders and the subscriptions.
    func connectToHub(_ hubName: String, received: @escaping @Sendable (Result<[UInt8], any Error>) -> Void,
                      completion: @escaping @Sendable (Result<StreamMux.ConnectionID, any Error>) -> Void) {
        Task { [self] in
            do {
                let address = try await resolve(hubName)
                let connection = try await tunnels.connectStream(to: address.key, candidates: address.candidates,
                                                                 port: OverlayMessage.eventStreamPort, handler: received)
                loop.execute { completion(.success(connection)) }
            } catch {
                loop.execute { completion(.failure(error)) }
            }
        }
    }

    /// Whether a failure to reach a hub is its answer (it will not change
    /// by retrying) rather than its absence.
    static func isRefusal(_ error: any Error) -> Bool {
        switch error {
        case TunnelError.reset(let why): why.isRefusal
        case is EventServiceError: true
        case let registry as RegistryClientError: registry.code == "not_found"
        default: false
        }
    }

    /// A hub that did not answer VERSION first: it runs an older pilot.
    static func olderHub(_ hub: String) -> String {
        "the hub \(hub) speaks an older event protocol than this node (\(EventRequest.protocolVersion)): run the same pilot version on both"
    }

    /// The message a peer's refusal becomes for the user.
    static func explain(_ error: any Error, hub: String) -> String {
        switch error {
        case TunnelError.reset(let why) where why.code == .notTrusted:
            "the hub \(hub) does not trust this node; ask it with 'pilot handshake \(hub) \"why\"' and have it approved"
        case TunnelError.reset(let why) where why.code == .portClosed:
            "\(hub) runs no event broker"
        default:
            "cannot reach the hub \(hub): \(error)"
        }
    }
}

public struct EventServiceError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A subscription held by a part of this process.
public final class RemoteSubscription: @unchecked Sendable {
    let acknowledgeHandler: @Sendable (UInt64) -> Void
    let stopHandler: @Sendable () async -> Void
    let liveHandler: @Sendable () -> Bool
    init(acknowledge: @escaping @Sendable (UInt64) -> Void, stop: @escaping @Sendable () async -> Void,
         live: @escaping @Sendable () -> Bool = { true }) {
        acknowledgeHandler = acknowledge
        stopHandler = stop
        liveHandler = live
    }

    /// Connected to the hub and confirmed by it (always, in process).
    /// Read on the node's loop.
    public var isLive: Bool { liveHandler() }

    /// Everything up to `id` is handled (stored): the hub may forget it.
    public func acknowledge(upTo id: UInt64) { acknowledgeHandler(id) }

    /// Ends the subscription once the last acknowledgement is delivered.
    public func stop() async { await stopHandler() }
}
