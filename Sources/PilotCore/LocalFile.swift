#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The few file operations state needs, with errors that name the path:
/// bounded reads, and writes that are atomic (temp file, fsync, rename)
/// so a crash leaves the old file or the new one, never half of either.
public enum LocalFile {
    public static func read(_ path: String, maxBytes: Int) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, operation: "cannot read", code: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: maxBytes + 1)
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, operation: "cannot read", code: errno)
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maxBytes else { throw FileError(path: path, reason: "is larger than \(maxBytes) bytes") }
        return Array(buffer[..<total])
    }

    public static func readText(_ path: String, maxBytes: Int) throws(FileError) -> String {
        let bytes = try read(path, maxBytes: maxBytes)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw FileError(path: path, reason: "is not UTF-8 text") }
        return text
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32) throws(FileError) {
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw FileError(path: path, operation: "cannot create", code: errno) }
        var failure: Int32?
        if fchmod(fd, mode_t(mode)) != 0 { failure = errno } // the umask must not change the mode
        var written = 0
        while failure == nil, written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 { if errno != EINTR { failure = errno } } else { written += n }
        }
        if failure == nil, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = errno }
        if let failure {
            unlink(temporary)
            throw FileError(path: path, operation: "cannot write", code: failure)
        }
        syncDirectory(of: path)
    }

    /// `mkdir -p`; the last component gets `mode`. Refuses a path that
    /// exists but is not a directory.
    public static func makeDirectory(_ path: String, mode: UInt32) throws(FileError) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw FileError(path: path, reason: "exists and is not a directory") }
            return
        }
        let parent = directoryName(path)
        if parent != path, !parent.isEmpty { try makeDirectory(parent, mode: 0o755) }
        guard mkdir(path, mode_t(mode)) == 0 || errno == EEXIST else {
            throw FileError(path: path, operation: "cannot create directory", code: errno)
        }
    }

    /// Fails when the directory cannot hold new files for this user.
    public static func checkWritableDirectory(_ path: String) throws(FileError) {
        guard access(path, W_OK | X_OK) == 0 else { throw FileError(path: path, operation: "cannot write to directory", code: errno) }
    }

    /// The names in a directory (without `.` and `..`).
    public static func listDirectory(_ path: String) throws(FileError) -> [String] {
        guard let directory = opendir(path) else { throw FileError(path: path, operation: "cannot list directory", code: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    public static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }

    private static func syncDirectory(of path: String) {
        let fd = open(directoryName(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

public struct FileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let description: String

    /// "PATH REASON", e.g. "/etc/pilot/config is larger than 1048576 bytes".
    public init(path: String, reason: String) {
        self.path = path
        description = "\(path) \(reason)"
    }

    /// "OPERATION PATH: strerror", e.g. "cannot read /x: Permission denied".
    init(path: String, operation: String, code: Int32) {
        self.path = path
        description = "\(operation) \(path): \(String(cString: strerror(code)))"
    }
}
