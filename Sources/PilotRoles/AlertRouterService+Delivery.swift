internal import AsyncHTTPClient
internal import NIOCore
internal import PilotAlerts
internal import PilotCore
internal import PilotTransport
internal import Logging

/// Delivery: each receiver's outbox rows go out one at a time, oldest
/// first, paced by its `DeliveryLane`. On the node's loop, but for the
/// sends themselves.
extension AlertRouterService {
    final class LaneState {
        var lane: DeliveryLane
        var inFlight = false
        var wake: Scheduled<Void>?
        var wakeAt: Int64 = 0
        /// When a failed head is tried again (for `pilot status`).
        var retryAt: Int64 = 0
        init(lane: DeliveryLane) { self.lane = lane }
    }

    /// Sends the receiver's oldest notification if its lane allows now,
    /// else wakes up when it does.
    func pump(_ receiver: String) {
        guard !stopped, let state = lanes[receiver], let sender = senders[receiver], !state.inFlight else { return }
        let entry: RouterOutbox.Entry?
        do { entry = try outbox.head(receiver) } catch {
            logger.error("cannot read the outbox", metadata: ["receiver": "\(receiver)", "error": "\(error)"])
            schedule(receiver, at: WallClock.nowMilliseconds() + 5_000)
            return
        }
        guard let entry else { return }
        let nowMs = WallClock.nowMilliseconds()
        let ready = state.lane.readyAt(now: nowMs)
        guard ready <= nowMs else { return schedule(receiver, at: ready) }
        state.lane.started(now: nowMs)
        state.inFlight = true
        Task { [self] in
            let (outcome, progress, answer) = await sender.send(entry.notification, progress: entry.progress, now: Self.now())
            loop.execute { self.finished(entry, outcome, progress: progress, answer: answer) }
        }
    }

    private func finished(_ entry: RouterOutbox.Entry, _ outcome: DeliveryLane.Outcome, progress: Int, answer: String) {
        let receiver = entry.notification.receiver
        guard let state = lanes[receiver] else { return }
        state.inFlight = false
        let nowMs = WallClock.nowMilliseconds()
        let metadata: Logger.Metadata = ["id": "\(entry.notification.id)", "receiver": "\(receiver)", "answer": "\(answer)"]
        do {
            switch state.lane.record(outcome, createdAt: entry.createdAt, now: nowMs) {
            case .delivered:
                try outbox.finish(entry, delivered: true)
                if entry.attempts > 0 { logger.notice("notification delivered after \(entry.attempts + 1) attempts", metadata: metadata) }
                else { logger.info("notification delivered", metadata: metadata) }
            case .retry(let at):
                try outbox.retry(entry, progress: progress, error: answer)
                state.retryAt = at
                if entry.attempts == 0 || (entry.attempts + 1) % 10 == 0 {
                    logger.warning("notification not delivered; retrying", metadata: metadata.merging([
                        "attempt": "\(entry.attempts + 1)", "retry_in_ms": "\(at - nowMs)", "queued": "\(outbox.depth(receiver))",
                    ]) { a, _ in a })
                }
                return schedule(receiver, at: at)
            case .giveUp(let reason):
                try outbox.finish(entry, delivered: false, error: reason)
                logger.error("NOTIFICATION LOST: given up", metadata: metadata.merging([
                    "reason": "\(reason)", "alerts": "\(entry.notification.alerts.map { "\($0.name)/\($0.host)" }.joined(separator: " "))",
                ]) { a, _ in a })
            }
        } catch {
            logger.error("cannot update the outbox", metadata: ["receiver": "\(receiver)", "error": "\(error)"])
            return schedule(receiver, at: nowMs + 5_000)
        }
        state.retryAt = 0
        pump(receiver)
    }

    private func schedule(_ receiver: String, at: Int64) {
        guard let state = lanes[receiver] else { return }
        if state.wake != nil, state.wakeAt <= at { return } // an earlier wake-up comes anyway
        state.wake?.cancel()
        state.wakeAt = at
        state.wake = loop.scheduleTask(in: .milliseconds(max(0, at - WallClock.nowMilliseconds()))) { [self] in
            state.wake = nil
            pump(receiver)
        }
    }

    // MARK: Dead man's switch

    /// Calls the heartbeat URL while the router works (its timers run) and
    /// its subscription at the hub is live. When the hub or the router is
    /// gone, the calls stop and the external check raises the alarm.
    func beat() {
        guard let url = options.heartbeatURL, !heartbeat.inFlight, subscriptionIsLive else { return }
        heartbeat.inFlight = true
        let client = self.client!
        Task { [self] in
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            request.headers.add(name: "User-Agent", value: "pilot-alert-router")
            let failure: String?
            do {
                let response = try await client.execute(request, timeout: .seconds(10))
                for try await _ in response.body {}
                failure = (200..<300).contains(Int(response.status.code)) ? nil : "HTTP \(response.status.code)"
            } catch {
                failure = "\(error)".replacingAll(url, with: HTTPURL.masked(url))
            }
            loop.execute { [self] in
                heartbeat.inFlight = false
                heartbeat.lastAt = Self.now()
                if let failure {
                    heartbeat.failed += 1
                    if heartbeat.lastError == nil { logger.warning("the heartbeat URL did not answer", metadata: ["error": "\(failure)"]) }
                } else {
                    heartbeat.sent += 1
                }
                heartbeat.lastError = failure
            }
        }
    }
}
