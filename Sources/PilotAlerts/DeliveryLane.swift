public import PilotCore

/// One receiver's delivery state, pure, with times in Unix milliseconds:
/// its notifications go out one at a time, oldest first (so a receiver
/// sees each alert's states in order), no faster than its rate, never
/// sooner than a `Retry-After` asked for, and after a failure with
/// exponential backoff and jitter, until delivered or older than `maxAge`.
public struct DeliveryLane: Sendable {
    public struct Options: Sendable, Equatable {
        public var minBackoff: Int64 = 1_000
        public var maxBackoff: Int64 = 300_000
        /// Seconds: a notification not delivered by then is given up, loudly.
        public var maxAge: Int64 = 86_400
        /// At most `count` sends per `perSeconds`.
        public var rateCount: Int?
        public var ratePerSeconds = 1
        public init() {}
    }

    public enum Outcome: Sendable, Equatable {
        case delivered
        /// Worth trying again (5xx, 429, 408, a timeout, no connection),
        /// with the receiver's `Retry-After` in milliseconds when it gave one.
        case failed(String, retryAfter: Int64? = nil)
        /// Refused in a way that retrying cannot change (another 4xx).
        case refused(String)
    }

    public enum Decision: Sendable, Equatable {
        case delivered
        case retry(at: Int64)
        case giveUp(String)
    }

    public let options: Options
    public private(set) var backoff: Int64
    /// Failed attempts of the notification at the head.
    public private(set) var attempts = 0
    /// No send before this time (a backoff or a Retry-After).
    public private(set) var notBefore: Int64 = 0
    private var tokens: Double
    private var refilledAt: Int64?
    private var random: SplitMix64

    public init(options: Options, seed: UInt64) {
        self.options = options
        backoff = max(1, options.minBackoff)
        tokens = Double(options.rateCount ?? 0)
        random = SplitMix64(state: seed)
    }

    /// When the head may be sent: now, or a later time to wait for.
    public mutating func readyAt(now: Int64) -> Int64 {
        var at = max(now, notBefore)
        if let count = options.rateCount {
            refill(now: now, count: count)
            if tokens < 1 {
                let perToken = Double(options.ratePerSeconds) * 1000 / Double(count)
                at = max(at, now + Int64(((1 - tokens) * perToken).rounded(.up)))
            }
        }
        return at
    }

    /// A send starts now (call only once `readyAt(now:) <= now`).
    public mutating func started(now: Int64) {
        if let count = options.rateCount {
            refill(now: now, count: count)
            tokens -= 1
        }
    }

    /// The result of sending a notification created at `createdAt` (Unix seconds).
    public mutating func record(_ outcome: Outcome, createdAt: Int64, now: Int64) -> Decision {
        switch outcome {
        case .delivered:
            reset()
            return .delivered
        case .refused(let reason):
            reset()
            return .giveUp("refused: \(reason)")
        case .failed(let reason, let retryAfter):
            attempts += 1
            // Full jitter over the upper half: spread, never below half the step.
            let step = backoff
            let jittered = step / 2 + Int64(random.next() % UInt64(max(1, step / 2 + 1)))
            backoff = min(options.maxBackoff, backoff * 2)
            let delay = max(min(jittered, options.maxBackoff), retryAfter ?? 0)
            let at = now + delay
            guard at / 1000 - createdAt <= options.maxAge else {
                reset()
                return .giveUp("not delivered within \(DurationText.describe(options.maxAge)) (\(attempts) attempts; last: \(reason))")
            }
            notBefore = at
            return .retry(at: at)
        }
    }

    private mutating func reset() {
        backoff = max(1, options.minBackoff)
        attempts = 0
    }

    private mutating func refill(now: Int64, count: Int) {
        defer { refilledAt = now }
        guard let last = refilledAt, now > last else {
            if refilledAt == nil { tokens = Double(count) }
            return
        }
        tokens = min(Double(count), tokens + Double(now - last) * Double(count) / (Double(options.ratePerSeconds) * 1000))
    }

    /// What an HTTP answer means for delivery; `Retry-After` in seconds
    /// (an HTTP date is treated as absent: backoff applies).
    public static func outcome(status: Int, retryAfter: String?, body: String) -> Outcome {
        let answer = "HTTP \(status)" + (body.isEmpty ? "" : " " + String(body.prefix(200)))
        switch status {
        case 200..<300: return .delivered
        case 408, 425, 429, 500..<600:
            let hint = retryAfter.flatMap { Int64($0.trimmingSpaces) }.map { min($0, 3_600) * 1000 }
            return .failed(answer, retryAfter: hint)
        default: return .refused(answer)
        }
    }
}

extension DurationText {
    /// 86400 → "24h", 90 → "90s", 120 → "2m".
    public static func describe(_ seconds: Int64) -> String {
        if seconds > 86_400, seconds % 86_400 == 0 { return "\(seconds / 86_400)d" }
        if seconds >= 3_600, seconds % 3_600 == 0 { return "\(seconds / 3_600)h" }
        if seconds >= 60, seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}

extension String {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
