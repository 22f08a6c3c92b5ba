#if canImport(Glibc)
internal import Glibc
#endif
public import Logging
public import NIOCore
public import NIOPosix
public import PilotAgent
internal import PilotCore
internal import PilotTransport

/// The agent's collection cycle: every interval (with up to 10 % jitter, so
/// a fleet started at once does not publish at once) it reads the host
/// and runs the service checks on a small thread pool (they block: files,
/// sockets, child processes), at most `checkConcurrency` at a time, and
/// hands every message to `publish`.
public final class MetricsLoop: @unchecked Sendable {
    public struct Options: Sendable {
        public var host: String
        public var intervalSeconds: Double = 30
        public var checks: [CheckSpec] = []
        public var checkConcurrency = 4
        /// Fields reported as fixed values (to try alert rules).
        public var overrides: [String: Double] = [:]
        public init(host: String) { self.host = host }
    }

    public typealias Publish = @Sendable ([AgentMessage]) async -> Void

    let options: Options
    let loop: any EventLoop
    let logger: Logger
    let publish: Publish
    let pool: NIOThreadPool
    private var collector: Collector
    private let reader = HostReader()
    private var task: Scheduled<Void>?
    /// The cycle under way, which `stop` waits for (on the loop).
    private var current: EventLoopFuture<Void>?
    private var stopped = false
    /// Cycles done, and the CPU time the last built-in collection took.
    public private(set) var cycles = 0

    /// Whether `pool` is this loop's own (started and shut down with it).
    private let ownsPool: Bool

    /// `pool`: threads shared with other loops of one process (the fleet
    /// simulator), else the loop starts its own.
    public init(options: Options, loop: any EventLoop, logger: Logger, pool shared: NIOThreadPool? = nil, publish: @escaping Publish) {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.publish = publish
        collector = Collector(host: options.host)
        pool = shared ?? NIOThreadPool(numberOfThreads: max(1, min(options.checkConcurrency, 8)))
        ownsPool = shared == nil
    }

    public func start() {
        if ownsPool { pool.start() }
        // A first reading now, so the first cycle (after a second) has CPU and rate deltas.
        _ = collect()
        schedule(after: 1)
    }

    private func schedule(after seconds: Double) {
        loop.execute { [self] in
            guard !stopped else { return }
            task = loop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) { [self] in
                guard !stopped else { return }
                current = loop.makeFutureWithTask { await self.cycle() }
            }
        }
    }

    private func cycle() async {
        let messages = await runCycle()
        cycles += 1
        await publish(messages)
        let jitter = Double.random(in: 0...0.1) * options.intervalSeconds
        schedule(after: options.intervalSeconds - jitter)
    }

    /// One cycle: the built-in collectors, then every check, as messages.
    public func runCycle() async -> [AgentMessage] {
        var messages = (try? await pool.runIfActive(eventLoop: loop) { self.collect() }.get()) ?? []
        messages += await runChecks()
        return messages
    }

    private func collect() -> [AgentMessage] {
        let snapshot = reader.snapshot()
        let messages = collector.cycle(snapshot, now: monotonicSeconds(), timestamp: WallClock.nowMilliseconds() / 1000)
        return options.overrides.isEmpty ? messages : messages.map { $0.overriding(options.overrides) }
    }

    private func runChecks() async -> [AgentMessage] {
        guard !options.checks.isEmpty else { return [] }
        let host = options.host
        let futures = options.checks.map { spec in
            pool.runIfActive(eventLoop: loop) { CheckRunner.run(spec).message(for: spec, host: host, timestamp: WallClock.nowMilliseconds() / 1000) }
        }
        var messages: [AgentMessage] = []
        for (spec, future) in zip(options.checks, futures) {
            do { messages.append(try await future.get()) } catch {
                logger.warning("check did not run", metadata: ["check": "\(spec.name)", "error": "\(error)"])
            }
        }
        return messages
    }

    /// `pilot agent --once --print`: two readings a second apart (CPU and
    /// rates need a delta), then the checks; no network.
    public static func printOnce(host: String, checks: [CheckSpec]) async -> [AgentMessage] {
        let reader = HostReader()
        var collector = Collector(host: host)
        _ = collector.cycle(reader.snapshot(), now: monotonicSeconds(), timestamp: WallClock.nowMilliseconds() / 1000)
        try? await Task.sleep(for: .seconds(1))
        var messages = collector.cycle(reader.snapshot(), now: monotonicSeconds(), timestamp: WallClock.nowMilliseconds() / 1000)
        for spec in checks { messages.append(CheckRunner.run(spec).message(for: spec, host: host, timestamp: WallClock.nowMilliseconds() / 1000)) }
        return messages
    }

    /// Stops collecting: no cycle starts after this, and the one under way
    /// (its messages spooled) finishes first.
    public func stop() async {
        let running = try? await loop.submit { [self] () -> EventLoopFuture<Void>? in
            stopped = true
            task?.cancel()
            return current
        }.get()
        if let running { try? await running.get() }
        if ownsPool { try? await pool.shutdownGracefully() }
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
