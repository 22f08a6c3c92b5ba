internal import Synchronization

/// What a stopping process is still waiting for, so that a shutdown that
/// runs past its bound can say exactly what did not finish ("the spool for
/// hub-01: 1200 messages not acknowledged") instead of just hanging.
/// One per process: a daemon is one process.
public final class ShutdownProgress: Sendable {
    public static let shared = ShutdownProgress()

    private let pending = Mutex<[(name: String, detail: String)]>([])

    public init() {}

    /// `name` has begun to stop, or is now waiting for `detail`.
    public func waiting(_ name: String, _ detail: String = "stopping") {
        pending.withLock { list in
            if let index = list.firstIndex(where: { $0.name == name }) {
                list[index].detail = detail
            } else {
                list.append((name, detail))
            }
        }
    }

    /// `name` has stopped.
    public func finished(_ name: String) {
        pending.withLock { list in list.removeAll { $0.name == name } }
    }

    /// What has begun and not finished, in the order it began.
    public var unfinished: [String] {
        pending.withLock { list in list.map { "\($0.name) (\($0.detail))" } }
    }
}
