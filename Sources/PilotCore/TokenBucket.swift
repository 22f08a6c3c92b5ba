/// A token bucket on a microsecond clock: `burst` tokens at most, refilled
/// at `perSecond`; it starts full.
public struct TokenBucket: Sendable {
    public let burst: Double
    public let perSecond: Double
    public private(set) var tokens: Double
    private var at: Int64?

    public init(burst: Double, perSecond: Double) {
        self.burst = burst
        self.perSecond = perSecond
        tokens = burst
    }

    /// Takes one token if there is one.
    public mutating func take(now: Int64) -> Bool {
        if let at { tokens = min(burst, tokens + Double(max(0, now - at)) * perSecond / 1_000_000) }
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether it would be full again at `now`: forgetting it loses nothing.
    public func isFull(now: Int64) -> Bool {
        guard let at else { return true }
        return tokens + Double(max(0, now - at)) * perSecond / 1_000_000 >= burst
    }
}
