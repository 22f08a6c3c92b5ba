#if canImport(Glibc)
internal import Glibc
#endif
public import PilotCore
public import PilotCrypto

/// The newest handshake initiation answered per peer, kept across restarts
/// so that a recorded initiation replayed after one is refused too
/// (`TunnelRouter.floors`). An append-only file in the node's state
/// directory: a magic line, then one 40-byte record (key, big-endian
/// timestamp) per answered initiation, written at once (no fsync: a
/// killed process loses nothing the kernel has; a power cut may lose the
/// last seconds, and a replay of those is still harmless, since an
/// answered initiation moves neither the route nor any traffic). The last
/// record of a key wins; the file is rewritten when it holds four times
/// more records than keys.
public final class HandshakeFloors {
    static let magic = Array("pilot-handshake-floors/1\n".utf8)
    static let recordBytes = PublicKey.byteCount + 8
    /// A file larger than this is refused rather than read (about 1.6 M records).
    static let maxBytes = 64 << 20

    public let path: String
    public private(set) var floors: [PublicKey: UInt64]
    private var records: Int
    private var fd: Int32 = -1

    /// Reads the file (a missing one is empty) and opens it for appending.
    public init(path: String) throws(FileError) {
        self.path = path
        let bytes = LocalFile.exists(path) ? try LocalFile.read(path, maxBytes: Self.maxBytes) : []
        (floors, records) = try Self.decode(bytes, path: path)
        try reopen()
        if bytes.isEmpty { append(Self.magic) }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The records of a file; a torn last record (a crash mid-write) is ignored.
    static func decode(_ bytes: [UInt8], path: String) throws(FileError) -> ([PublicKey: UInt64], Int) {
        guard !bytes.isEmpty else { return ([:], 0) }
        guard bytes.starts(with: magic) else {
            throw FileError(path: path, reason: "is not a handshake floor file (remove it to start afresh)")
        }
        var floors: [PublicKey: UInt64] = [:]
        var records = 0
        var offset = magic.count
        while offset + recordBytes <= bytes.count {
            let record = bytes[offset..<(offset + recordBytes)]
            offset += recordBytes
            guard let key = try? PublicKey(bytes: Array(record.prefix(PublicKey.byteCount))) else { continue }
            let timestamp = record.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            floors[key] = max(floors[key] ?? 0, timestamp)
            records += 1
        }
        return (floors, records)
    }

    static func record(_ key: PublicKey, _ timestamp: UInt64) -> [UInt8] {
        key.bytes + (0..<8).map { UInt8(truncatingIfNeeded: timestamp >> (56 - 8 * $0)) }
    }

    /// Remembers an answered initiation.
    public func answered(_ key: PublicKey, _ timestamp: UInt64) {
        guard timestamp > floors[key] ?? 0 else { return }
        floors[key] = timestamp
        records += 1
        if records > 4 * floors.count + 1_024 { compact() } else { append(Self.record(key, timestamp)) }
    }

    private func compact() {
        var bytes = Self.magic
        for (key, timestamp) in floors { bytes += Self.record(key, timestamp) }
        do {
            try LocalFile.writeAtomically(path, bytes, mode: 0o600)
            records = floors.count
            try reopen()
        } catch {
            // The old file still holds every floor; appending goes on.
        }
    }

    private func reopen() throws(FileError) {
        if fd >= 0 { close(fd) }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(path: path, reason: "cannot be opened: \(String(cString: strerror(errno)))") }
    }

    private func append(_ bytes: [UInt8]) {
        guard fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
    }
}
