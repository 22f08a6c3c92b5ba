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
