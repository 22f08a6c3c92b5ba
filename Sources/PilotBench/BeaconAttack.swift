import Glibc
import Logging
import NIOCore
import NIOPosix
import PilotCore
import PilotCrypto
import PilotNode
import PilotTransport
import PilotWire

/// `pilot-bench beacon-attack`: what a hostile client gets from a beacon,
/// using only the beacon's own encodings. N keys, each on its own UDP
/// socket (so the beacon sees N nodes), say hello, then push relay
/// datagrams toward one target key as fast as `--rate` allows.
///
///   --mode strangers   fresh keys the registry never saw: half say hello
///                      without a ticket (as before tickets), half with a
///                      ticket they signed themselves, plus one that shows
///                      another node's ticket when --registry is given
///   --mode registered  keys registered at --registry, with the registry's
///                      real tickets (an open registry gives anyone one)
///   --mode legacy      fresh keys, every hello without a ticket: what any
///                      client sent before tickets (to measure an old beacon)
///
/// Prints one line: `keys N welcomed W sent_datagrams D sent_bytes B seconds S`.
/// What reached the target is the beacon's to say (`pilot beacon status`).
struct BeaconAttackArguments {
    var beacon: Endpoint?
    var registry: Endpoint?
    var target: PublicKey?
    var mode = "strangers"
    var keys = 8
    var seconds = 2.0
    var rate = 1000.0
    var size = 1000

    init(_ argv: [String]) throws {
        try eachOption(argv) { flag, value in
            switch flag {
            case "--beacon": beacon = try Endpoint(parsing: value)
            case "--registry": registry = try Endpoint(parsing: value)
            case "--target": target = try PublicKey(base64: value)
            case "--mode": mode = value
            case "--keys": keys = Int(value) ?? 0
            case "--seconds": seconds = Double(value) ?? 0
            case "--rate": rate = Double(value) ?? 0
            case "--size": size = Int(value) ?? 0
            default: throw BenchError("unknown option \(flag)")
            }
        }
        guard beacon != nil, target != nil else { throw BenchError("beacon-attack needs --beacon HOST:PORT and --target KEY") }
        guard ["strangers", "registered", "legacy"].contains(mode) else { throw BenchError("--mode is strangers, registered or legacy") }
        guard mode == "strangers" || registry != nil else { throw BenchError("--mode registered needs --registry HOST:PORT") }
        guard (1...256).contains(keys), seconds > 0, seconds <= 60, rate > 0, rate <= 100_000, (1...1200).contains(size) else {
            throw BenchError("--keys 1-256, --seconds up to 60, --rate up to 100000, --size 1-1200")
        }
    }
}

/// One attacking key and its socket; touched only on the bench's loop.
final class AttackKey: @unchecked Sendable {
    let key: SigningKey
    var ticket: BeaconTicket?
    var channel: (any Channel)?
    var welcomed = false

    init(key: SigningKey) { self.key = key }
}

func runBeaconAttack(_ arguments: BeaconAttackArguments) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    var logger = Logger(label: "beacon-attack")
    logger.logLevel = .critical
    let beacon = try SocketAddress(ipAddress: arguments.beacon!.host, port: Int(arguments.beacon!.port))
    let attackers = (0..<arguments.keys).map { _ in AttackKey(key: SigningKey.generate()) }
    var template = Array("/tmp/pilot-bench-attack-XXXXXX".utf8CString)
    let scratch = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    defer { _ = scratch.withCString { rmdirRecursively($0) } }

    // Real tickets: register each key (a thief's donor too, in strangers mode).
    var clients: [RegistryClient] = []
    let donor = AttackKey(key: SigningKey.generate())
    let registering = arguments.mode == "registered" ? attackers : (arguments.mode == "strangers" && arguments.registry != nil ? [donor] : [])
    for (index, attacker) in registering.enumerated() {
        var options = RegistryClient.Options(registry: arguments.registry!, hostname: "attacker-\(index)-\(UInt32.random(in: 0...UInt32.max))",
                                             pinPath: scratch + "/registry-\(index).key")
        options.wantsBeaconTicket = true
        let client = RegistryClient(options: options, identity: attacker.key, loop: loop, logger: logger)
        client.onBeaconTicket = { ticket in attacker.ticket = ticket }
        client.start()
        clients.append(client)
    }
    for _ in 0..<100 {
        let missing = try await loop.submit { registering.filter { $0.ticket == nil }.count }.get()
        if missing == 0 { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    let ticketed = try await loop.submit { registering.filter { $0.ticket != nil }.count }.get()
    guard ticketed == registering.count else { throw BenchError("only \(ticketed) of \(registering.count) keys got a ticket from the registry") }

    for attacker in attackers {
        attacker.channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramReader { bytes, _, _ in
                        if case .welcome? = try? BeaconMessage.parse(bytes) { attacker.welcomed = true }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
    // A thief: a fresh key showing the donor's real ticket.
    let thief = AttackKey(key: SigningKey.generate())
    thief.ticket = donor.ticket
    let all = attackers + (donor.ticket != nil ? [thief] : [])
    if thief.ticket != nil {
        thief.channel = try await DatagramBootstrap(group: loop).bind(host: "127.0.0.1", port: 0).get()
    }

    @Sendable func send(_ attacker: AttackKey, _ datagram: [UInt8]) {
        guard let channel = attacker.channel else { return }
        channel.write(AddressedEnvelope(remoteAddress: beacon, data: channel.allocator.buffer(bytes: datagram)), promise: nil)
    }
    // Hellos, twice (a lost datagram on a loaded machine): each key's own idea of a ticket.
    let wall = UInt64(WallClock.nowMilliseconds())
    for round in UInt64(0)..<2 {
        try await loop.submit {
            for (index, attacker) in all.enumerated() {
                var ticket = attacker.ticket
                if ticket == nil, index % 2 == 1, arguments.mode == "strangers" {
                    ticket = BeaconTicket.issue(for: attacker.key.publicKey, network: 1, now: Int64(wall), lifetimeMs: 3_600_000, by: attacker.key)
                }
                send(attacker, BeaconMessage.signedHello(attacker.key, timestamp: wall + round, ticket: ticket).encoded)
                attacker.channel?.flush()
            }
        }.get()
        try await Task.sleep(for: .milliseconds(250))
    }
    let welcomed = try await loop.submit { all.filter(\.welcomed).count }.get()

    // The flood: every 10 ms each key sends its share of --rate.
    let inner = TunnelFrame.transport(receiverIndex: 1, sealed: [UInt8](repeating: 0xA5, count: max(0, arguments.size - 5))).encoded
    let relay = BeaconMessage.relay(target: arguments.target!, datagram: Array(inner.prefix(arguments.size))).encoded
    let perTick = arguments.rate / 100
    let started = nowSeconds()
    var sent = 0
    var owed = 0.0
    while nowSeconds() - started < arguments.seconds {
        owed += perTick
        let batch = Int(owed)
        owed -= Double(batch)
        try await loop.submit {
            for attacker in all {
                for _ in 0..<batch { send(attacker, relay) }
                attacker.channel?.flush()
            }
        }.get()
        sent += batch * all.count
        try await Task.sleep(for: .milliseconds(10))
    }
    let elapsed = nowSeconds() - started
    try await Task.sleep(for: .milliseconds(200)) // let the beacon drain its socket
    print("keys \(all.count) welcomed \(welcomed) sent_datagrams \(sent) sent_bytes \(sent * relay.count) seconds \(fixed(elapsed, 2))")
    for attacker in all { try? await attacker.channel?.close() }
    clients.forEach { $0.stop() }
    try? await Task.sleep(for: .milliseconds(100)) // the stops run on the loop
    try? await group.shutdownGracefully()
}

/// Removes the scratch directory (the registry pins the clients wrote).
private func rmdirRecursively(_ path: UnsafePointer<CChar>) -> Int32 {
    guard let directory = opendir(path) else { return -1 }
    while let entry = readdir(directory) {
        let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        if name == "." || name == ".." { continue }
        unlink(String(cString: path) + "/" + name)
    }
    closedir(directory)
    return rmdir(path)
}
