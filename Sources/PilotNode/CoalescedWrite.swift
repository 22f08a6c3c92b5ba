public import NIOCore

/// One write for many changes: `request()` asks for a write within `delay`,
/// and every request until that write shares it. The futures complete
/// after the write, so what must follow a durable change (an answer to a
/// peer, a command's return) waits for it. Confined to `loop`.
public final class CoalescedWrite {
    let loop: any EventLoop
    let delay: TimeAmount
    let write: () -> Void
    private var pending: EventLoopPromise<Void>?
    /// Writes done, for status and tests.
    public private(set) var writes = 0

    public init(loop: any EventLoop, delay: TimeAmount, write: @escaping () -> Void) {
        self.loop = loop
        self.delay = delay
        self.write = write
    }

    /// Runs `body` after the write that is due, or now if none is: what
    /// must not overtake a pending write (an acknowledgement of messages
    /// whose effect it saves) keeps its order.
    public func whenWritten(_ body: @escaping () -> Void) {
        if let pending { pending.futureResult.assumeIsolated().whenSuccess { body() } } else { body() }
    }

    public func request() -> EventLoopFuture<Void> {
        if let pending { return pending.futureResult }
        let promise = loop.makePromise(of: Void.self)
        pending = promise
        loop.assumeIsolated().scheduleTask(in: delay) {
            self.pending = nil
            self.writes += 1
            self.write()
            promise.succeed(())
        }
        return promise.futureResult
    }
}
