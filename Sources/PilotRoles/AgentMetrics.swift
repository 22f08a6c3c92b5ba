public import NIOPosix
public import PilotCore
public import PilotNode

/// The agent's role on its node: collects the host's metrics and runs its
/// service checks every interval, and publishes them to the hub through
/// the node's spool, so a hub outage delays them but loses none.
public final class AgentMetrics: NodeRole, @unchecked Sendable {
    public let name = "metrics"
    let options: MetricsLoop.Options
    private var loop: MetricsLoop?

    let pool: NIOThreadPool?
    /// Called with each cycle's delay until the hub acknowledged it (nil:
    /// not within 5 minutes); set before the node starts (pilot-bench fleet).
    public var onConfirmed: (@Sendable (Double?) -> Void)?

    public init(options: MetricsLoop.Options, pool: NIOThreadPool? = nil) {
        self.options = options
        self.pool = pool
    }

    public func start(on node: Node) async throws {
        guard let hub = node.options.hub else {
            node.logger.notice("no hub configured (pilot init --hub NAME): metrics and checks are not collected")
            return
        }
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
        self.loop = loop
        loop.start()
        logger.info("collecting metrics", metadata: [
            "interval": "\(options.intervalSeconds)s", "checks": "\(options.checks.map(\.name).joined(separator: ","))", "hub": "\(hub)",
        ])
    }

    public func stop() async {
        await loop?.stop()
    }
}
