public import PilotCrypto

/// Refuses signed requests whose timestamp is outside the skew window or
/// whose nonce was already seen from that key. Per key it remembers the
/// last `ringSize` nonces; a request older than all of them is refused
/// too, since it can no longer be told apart from a replay. So any replay
/// is refused whatever the ring size; the ring only lets a node's own
/// requests arrive a little out of order. Memory stays bounded: `ringSize`
/// small entries per registered key.
public struct RequestGuard: Sendable {
    public static let ringSize = 8
    public let skewMs: Int64
    private var rings: [PublicKey: [(nonce: UInt64, ts: Int64)]] = [:]

    public init(skewMs: Int64 = 300_000) { self.skewMs = skewMs }

    public mutating func admit(key: PublicKey, timestamp: Int64, nonce: [UInt8], now: Int64) throws(RegistryError) {
        guard abs(now - timestamp) <= skewMs else { throw .staleTimestamp(skewSeconds: (timestamp - now) / 1000) }
        guard nonce.count >= 8 else { throw .badRequest("nonce shorter than 8 bytes") }
        let value = nonce.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var ring = rings[key] ?? []
        if ring.contains(where: { $0.nonce == value }) { throw .replayed }
        if ring.count >= Self.ringSize {
            let oldest = ring.min { $0.ts < $1.ts }!.ts
            guard timestamp > oldest else { throw .replayed }
            ring.remove(at: ring.firstIndex { $0.ts == oldest }!)
        }
        ring.append((value, timestamp))
        rings[key] = ring
    }

    public mutating func forget(_ key: PublicKey) { rings[key] = nil }
}

/// A token bucket per client address: `burst` at once, refilled at
/// `perMinute`. Idle buckets are dropped so a spray of addresses cannot
/// grow it without bound.
public struct RateLimiter: Sendable {
    public let burst: Double
    public let perMinute: Double
    private var buckets: [String: (tokens: Double, at: Int64)] = [:]
    private let maxBuckets = 100_000

    public init(burst: Int, perMinute: Int) {
        self.burst = Double(burst)
        self.perMinute = Double(perMinute)
    }

    public mutating func allow(_ client: String, now: Int64) -> Bool {
        var bucket = buckets[client] ?? (burst, now)
        bucket.tokens = min(burst, bucket.tokens + Double(max(0, now - bucket.at)) * perMinute / 60_000)
        bucket.at = now
        guard bucket.tokens >= 1 else {
            buckets[client] = bucket
            return false
        }
        bucket.tokens -= 1
        if buckets.count >= maxBuckets { prune(now: now) }
        buckets[client] = bucket
        return true
    }

    private mutating func prune(now: Int64) {
        let refillMs = perMinute > 0 ? Int64(burst / perMinute * 60_000) : Int64.max
        buckets = buckets.filter { now - $0.value.at < refillMs }
    }
}
