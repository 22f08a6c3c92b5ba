import Glibc
import PilotCore
import PilotCrypto
import PilotWire

/// `pilot-bench attack handshake-flood --to HOST:PORT --key BASE64 [--count N] [--sources N]`
///
/// The attacker of hardening item 1: N handshake initiations to a node,
/// each from a fresh key that no registry lists, made with the protocol's
/// own code (so mac1 is right: the attacker knows the node's public key),
/// sent from `--sources` addresses 127.0.3.1… (each its own socket),
/// fire-and-forget (cookie replies are not answered). Prints what it sent.
func runHandshakeFlood(_ argv: [String]) throws {
    var target: Endpoint?
    var key: PublicKey?
    var count = 10_000
    var sources = 50
    try eachOption(argv) { flag, value in
        switch flag {
        case "--to": target = try Endpoint(parsing: value)
        case "--key": key = try PublicKey(base64: value)
        case "--count": count = Int(value) ?? 0
        case "--sources": sources = Int(value) ?? 0
        default: throw BenchError("unknown option \(flag)")
        }
    }
    guard let target, let key else { throw BenchError("handshake-flood needs --to HOST:PORT and --key BASE64") }
    guard (1...1_000_000).contains(count), (1...250).contains(sources) else { throw BenchError("--count 1…1000000 and --sources 1…250") }
    try Sodium.initialize()
    var destination = sockaddr_in()
    destination.sin_family = sa_family_t(AF_INET)
    destination.sin_port = target.port.bigEndian
    guard inet_pton(AF_INET, target.host, &destination.sin_addr) == 1 else { throw BenchError("--to must be an IPv4 address") }
    let sockets = try (1...sources).map { source -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.3.\(source)", &local.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard fd >= 0, bound == 0 else { throw BenchError("cannot bind 127.0.3.\(source): \(String(cString: strerror(errno)))") }
        return fd
    }
    defer { for fd in sockets { close(fd) } }
    var wall = Int64(time(nil)) * 1000
    var sent = 0
    for n in 0..<count {
        var peer = TunnelPeer(identity: SigningKey.generate(), peer: key, preference: .chacha20poly1305)
        wall += 1
        for case .transmit(let datagram) in peer.send([], time: TunnelTime(now: 1, wall: wall), freshIndex: UInt32(n + 1)) {
            let fd = sockets[n % sockets.count]
            let result = datagram.withUnsafeBytes { bytes in
                withUnsafePointer(to: &destination) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            if result > 0 { sent += 1 }
        }
        // Paced a little so loopback's socket buffers do not drop most of them.
        if n % 200 == 199 { usleep(5_000) }
    }
    print("sent \(sent) handshake initiations from \(count) fresh keys over \(sources) source addresses to \(target)")
}
