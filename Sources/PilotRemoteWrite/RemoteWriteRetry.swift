/// What the sender does after each attempt: the pure part of remote write.
/// Like Prometheus's own sender: 2xx sent; 429, 5xx and transport errors
/// retried with exponential backoff (honouring Retry-After, capped);
/// any other status refused for good, the batch dropped and counted, since
/// sending it again would be refused again and block everything behind it.
public struct RemoteWriteRetry: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case status(Int, retryAfter: Int64? = nil)
        case transportError
    }

    public enum Decision: Sendable, Equatable {
        /// Remove the batch; send the next at once.
        case sent
        /// Keep the batch; try it again after this many milliseconds.
        case retry(after: Int64)
        /// Remove the batch without it having been stored remotely.
        case drop
    }

    public let minBackoff: Int64
    public let maxBackoff: Int64
    public private(set) var backoff: Int64
    /// Failed attempts of the current batch.
    public private(set) var attempts = 0

    public init(minBackoff: Int64 = 250, maxBackoff: Int64 = 30_000) {
        self.minBackoff = max(1, minBackoff)
        self.maxBackoff = max(self.minBackoff, maxBackoff)
        backoff = self.minBackoff
    }

    public mutating func record(_ outcome: Outcome) -> Decision {
        switch outcome {
        case .status(let code, _) where (200..<300).contains(code):
            reset()
            return .sent
        case .status(let code, let retryAfter) where code == 429 || (500..<600).contains(code):
            return wait(atLeast: retryAfter)
        case .transportError:
            return wait(atLeast: nil)
        case .status:
            reset()
            return .drop
        }
    }

    private mutating func wait(atLeast hint: Int64?) -> Decision {
        attempts += 1
        let delay = min(maxBackoff, max(backoff, hint ?? 0))
        backoff = min(maxBackoff, backoff * 2)
        return .retry(after: delay)
    }

    private mutating func reset() {
        backoff = minBackoff
        attempts = 0
    }
}
