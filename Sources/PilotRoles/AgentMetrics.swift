public import NIOPosix
public import PilotCore
public import PilotNode
internal import Synchronization

/// The agent's role on its node: collects the host's metrics and runs its
/// service checks every interval, and publishes them to the hub through
/// the node's spool, so a hub outage delays them but loses none.
public final class AgentMetrics: NodeRole, @unchecked Sendable {
    public let name = "metrics"
    let options: MetricsLoop.Options
    /// The metrics loop once it runs, and the search for a hub before that.
    private let state = Mutex<(loop: MetricsLoop?, finding: Task<Void, Never>?, stopped: Bool)>((nil, nil, false))

    let pool: NIOThreadPool?
    /// Called with each cycle's delay until the hub acknowledged it (nil:
    /// not within 5 minutes); set before the node starts (pilot-bench fleet).
    public var onConfirmed: (@Sendable (Double?) -> Void)?

    public init(options: MetricsLoop.Options, pool: NIOThreadPool? = nil) {
        self.options = options
        self.pool = pool
    }

    public func start(on node: Node) async throws {
        if let hub = node.options.hub { return begin(publishingTo: hub, on: node) }
        guard node.registry != nil else {
            node.logger.notice("no hub configured (pilot init --hub NAME) and no registry to find one at: metrics and checks are not collected")
            return
        }
        // No hub given: the one the registry lists, once it lists one.
        let finding = Task { [weak self] in
            var delay = 1.0, said = false
            while !Task.isCancelled {
                do {
                    let hub = try await node.hub()
                    self?.begin(publishingTo: hub, on: node)
                    return
                } catch {
                    if !said { node.logger.notice("metrics wait for a hub: \(error)") }
                    said = true
                }
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
        state.withLock { $0.finding = finding }
    }

    private func begin(publishingTo hub: String, on node: Node) {
        let events = node.events, logger = node.logger, onConfirmed = self.onConfirmed
        let loop = MetricsLoop(options: options, loop: node.loop, logger: logger, pool: pool) { messages in
            let batch = messages.compactMap { message in (try? Topic(message.topic)).map { (topic: $0, payload: message.json) } }
            // Spooled even while the hub does not trust this node yet: they
            // go out once a handshake is approved.
            do {
                if let onConfirmed {
                    try await events?.publish(to: hub, messages: batch, spoolWhileRefused: true, confirmed: onConfirmed)
                } else {
                    try await events?.publish(to: hub, messages: batch, spoolWhileRefused: true)
                }
            } catch {
                logger.error("cannot publish metrics", metadata: ["hub": "\(hub)", "error": "\(error)"])
            }
        }
        let stopped = state.withLock { state in
            if !state.stopped { state.loop = loop }
            return state.stopped
        }
        guard !stopped else { return }
        loop.start()
        logger.info("collecting metrics", metadata: [
            "interval": "\(options.intervalSeconds)s", "checks": "\(options.checks.map(\.name).joined(separator: ","))", "hub": "\(hub)",
        ])
    }

    public func stop() async {
        let (loop, finding) = state.withLock { state in
            state.stopped = true
            return (state.loop, state.finding)
        }
        finding?.cancel()
        await loop?.stop()
    }
}
