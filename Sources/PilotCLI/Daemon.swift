#if canImport(Glibc)
internal import Glibc
#endif
internal import Logging
internal import PilotCore
internal import ServiceLifecycle
internal import UnixSignals

/// How a daemon (a role, `pilot up`) runs and stops: its services in one
/// `ServiceGroup` until SIGTERM or SIGINT (or `--for`), then a graceful
/// stop in reverse order within `bound`. Past the bound it exits 1 naming
/// what did not finish; a second signal ends it at once.
enum Daemon {
    /// systemd's `TimeoutStopSec` in the units matches it, with room to spare.
    static let stopBound: Duration = .seconds(10)

    /// Starts what `start` builds (signals are handled from the first
    /// moment: one while starting ends the process at once), then runs the
    /// services it returns until asked to stop.
    static func run(logger: Logger, for duration: Duration? = nil, bound: Duration = stopBound,
                    _ start: () async throws -> [any Service]) async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let watcher = SignalWatcher(logger: logger, bound: bound)
        let watching = Task { await watcher.watch(signals) }
        defer { watching.cancel() }
        let services = try await start()
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        guard await watcher.running(group) else { return }
        let timer = duration.map { duration in
            Task {
                guard (try? await Task.sleep(for: duration)) != nil else { return }
                await watcher.stop(reason: "--for \(duration) elapsed")
            }
        }
        defer { timer?.cancel() }
        try await group.run()
        logger.info("stopped")
    }
}

/// Turns signals into a graceful stop, then a bounded one.
private actor SignalWatcher {
    let logger: Logger
    let bound: Duration
    private var group: ServiceGroup?
    private var stopping = false

    init(logger: Logger, bound: Duration) {
        self.logger = logger
        self.bound = bound
    }

    /// The services run from now on; false when a signal came first.
    func running(_ group: ServiceGroup) -> Bool {
        self.group = group
        return true
    }

    func watch(_ signals: UnixSignalsSequence) async {
        for await signal in signals {
            guard group != nil else {
                // Still starting: nothing to stop gracefully yet.
                Self.say("pilot: \(signal) while starting; stopping at once")
                exit(1)
            }
            if stopping {
                Self.say("pilot: \(signal) again; stopping at once")
                exit(1)
            }
            await stop(reason: "\(signal)")
        }
    }

    func stop(reason: String) async {
        guard !stopping, let group else { return }
        stopping = true
        logger.notice("stopping", metadata: ["reason": "\(reason)", "bound": "\(bound)"])
        let bound = self.bound
        Task.detached {
            try? await Task.sleep(for: bound)
            let unfinished = ShutdownProgress.shared.unfinished
            Self.say("pilot: did not stop within \(bound): " + (unfinished.isEmpty ? "the services did not return" : unfinished.joined(separator: "; ")))
            exit(1)
        }
        await group.triggerGracefulShutdown()
    }

    /// One line on stderr, written at once (the process may end right after).
    nonisolated static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
