#if canImport(Glibc)
internal import Glibc
#endif
public import NIOCore
public import PilotCore
public import PilotWire

/// Wall-clock time in Unix milliseconds: what timestamps and presence use.
public enum WallClock {
    public static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

extension SocketAddress {
    /// `host:port`, with brackets for IPv6, as listeners report themselves.
    public var endpointDescription: String {
        let host = ipAddress ?? "?"
        return host.contains(":") ? "[\(host)]:\(port ?? 0)" : "\(host):\(port ?? 0)"
    }
}

/// Writes `text` to `path` atomically (for listeners reporting their bound
/// address to tests and `pilot up`).
public func reportAddress(_ text: String, to path: String) {
    try? LocalFile.writeAtomically(path, Array((text + "\n").utf8), mode: 0o644)
}

/// Raises the soft open-files limit to the hard one: a registry holds one
/// connection per node.
public func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// glibc's malloc_trim, which the Glibc module does not import (malloc.h).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

/// Returns freed heap pages to the kernel.
public func releaseFreeMemory() {
    _ = glibcMallocTrim(0)
}

/// Unmaps this process's view of its own program text; the pages stay in
/// the page cache, and what runs from now on maps its pages again. The
/// kernel maps text 64 kB around every page first touched, so start-up
/// (argument parsing, configuration, TLS and HTTP set-up, every
/// conformance it looked up) leaves most of the 30 MB of code resident
/// that a daemon then never runs again. Only the read-and-execute mapping
/// of the executable: never written, so nothing is lost. Returns the bytes
/// released.
@discardableResult
public func releaseStartupCode() -> Int {
    guard let maps = try? LocalFile.readText("/proc/self/maps", maxBytes: 4 << 20) else { return 0 }
    var target = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &target, target.count - 1)
    guard length > 0 else { return 0 }
    let executable = String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var released = 0
    for line in maps.split(separator: "\n") {
        // start-end perms offset device inode path
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6, fields[1] == "r-xp", fields[5].trimmingPrefix(while: { $0 == " " }) == executable else { continue }
        let bounds = fields[0].split(separator: "-")
        guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), end > start,
              madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_DONTNEED) == 0 else { continue }
        released += Int(end - start)
    }
    return released
}

/// glibc's mallopt (malloc.h, which the Glibc module does not import).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// For a daemon whose threads allocate little (the agent on every host):
/// one malloc arena instead of one per thread that ever allocated (each a
/// 132 kB heap, mostly idle), and freed memory above 64 kB at the top of
/// the heap given back at once. Call it before the first threads start.
/// Measured: 3.2 MB of anonymous memory becomes about 2.4.
public func preferSmallHeap() {
    let arenaMax: Int32 = -8, trimThreshold: Int32 = -1
    _ = glibcMallopt(arenaMax, 1)
    _ = glibcMallopt(trimThreshold, 64 << 10)
}

extension TunnelTime {
    /// Now: the monotonic clock in microseconds, the wall clock in milliseconds.
    public static func current() -> TunnelTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return TunnelTime(now: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000, wall: WallClock.nowMilliseconds())
    }
}

/// Hands every datagram a UDP channel reads to `receive` (on its event loop).
public final class DatagramReader: ChannelInboundHandler {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let receive: (_ bytes: [UInt8], _ source: SocketAddress, _ channel: any Channel) -> Void

    public init(_ receive: @escaping (_ bytes: [UInt8], _ source: SocketAddress, _ channel: any Channel) -> Void) {
        self.receive = receive
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        receive(Array(envelope.data.readableBytesView), envelope.remoteAddress, context.channel)
    }

    /// ICMP errors (port unreachable) surface here; a datagram socket carries on.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}
