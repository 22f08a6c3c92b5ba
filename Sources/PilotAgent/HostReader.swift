#if canImport(Glibc)
internal import Glibc
#endif

/// The I/O shell of the collectors: reads the kernel's files into one
/// reused buffer (the agent's steady memory stays small) and statvfs's
/// every real filesystem. `root` lets tests point it at captured copies.
public final class HostReader {
    let proc: String
    private var buffer: [UInt8]
    /// Network filesystems are left out: a hung server would block statvfs.
    static let networkTypes: Set<String> = ["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.sshfs", "9p", "afs", "lustre"]

    public init(proc: String = "/proc") {
        self.proc = proc
        buffer = [UInt8](repeating: 0, count: 16 * 1024)
    }

    public func snapshot() -> HostSnapshot {
        var snapshot = HostSnapshot()
        snapshot.stat = read("stat")
        snapshot.loadavg = read("loadavg")
        snapshot.meminfo = read("meminfo")
        snapshot.uptime = read("uptime")
        snapshot.netDev = read("net/dev")
        snapshot.diskstats = read("diskstats")
        if let mounts = read("self/mounts") {
            snapshot.filesystems = Mount.parseReal(mounts).filter { !Self.networkTypes.contains($0.type) }.compactMap(Self.usage)
        }
        return snapshot
    }

    static func usage(_ mount: Mount) -> FilesystemUsage? {
        var info = statvfs()
        guard statvfs(mount.mountPoint, &info) == 0, info.f_blocks > 0 else { return nil }
        let unit = UInt64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        return FilesystemUsage(mount: mount, totalBytes: UInt64(info.f_blocks) * unit, freeBytes: UInt64(info.f_bfree) * unit,
                               availableBytes: UInt64(info.f_bavail) * unit, inodes: UInt64(info.f_files), inodesFree: UInt64(info.f_ffree))
    }

    /// A file under `proc`, whole (growing the buffer up to 4 MiB), or nil.
    func read(_ name: String) -> String? {
        let fd = open(proc + "/" + name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var total = 0
        while true {
            if total == buffer.count {
                guard buffer.count < 4 << 20 else { return nil }
                buffer.append(contentsOf: repeatElement(0, count: buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            total += n
        }
        return String(decoding: buffer[..<total], as: UTF8.self)
    }
}
