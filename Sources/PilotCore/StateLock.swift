#if canImport(Glibc)
internal import Glibc
#endif

/// One process per state directory: an exclusive `flock` on `DIR/NAME`,
/// held until `release` (or the process ends, however it ends). A second
/// node on the same directory would share its spool, its identity's
/// sessions and its control socket; it is refused instead, naming the pid
/// that holds the directory.
public final class StateLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    public struct Held: Error, CustomStringConvertible {
        public let description: String
    }

    public init(directory: String, name: String = "node.lock") throws {
        path = directory + "/" + name
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Held(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(fd, &buffer, buffer.count)
            close(fd)
            let pid = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).split(separator: "\n").first.map(String.init) : nil
            throw Held(description: busy
                ? "another pilot node runs on \(directory)" + (pid.map { " (pid \($0))" } ?? "") + "; stop it first, or give another --state-dir"
                : "cannot lock \(path): \(String(cString: strerror(errno)))")
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Lets the next process have the directory.
    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
