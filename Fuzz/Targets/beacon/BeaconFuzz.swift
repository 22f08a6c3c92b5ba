// BeaconCore.receive (PilotWire/BeaconCore.swift): every UDP datagram the
// beacon receives, from anyone on the internet.
//
// Input: `op u8` steps; the source of a datagram is one of four endpoints
// (op >> 6):
//   0 a datagram as sent (chunk)
//   1 a hello signed by node key k (byte), timestamp wall + delta (byte, s),
//     with a ticket (byte t): t % 6 = 0 the registry's, 1 none, 2 another
//     key's, 3 self-signed, 4 expired, 5 for network 2; t >> 3 is its
//     lifetime in 10 s
//   2 a connect signed by key k to key j (bytes), timestamp as above
//   3 a relay to key j (byte) of a datagram (chunk)
//   4 time passes (byte x 10 s), then expire()
// The harness signs hello, connect and tickets, so the fuzzer reaches what
// lies behind the signature checks. Checked (a violation traps):
// everything the beacon sends parses as a beacon message of a kind meant
// for nodes, and goes to an endpoint it heard from; it relays only for and
// to keys that showed a ticket of the registry's; and between two steps of
// time no target receives more than its budget (5 datagrams) on others' behalf.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotWire

let keys = (0..<4).map { FuzzKeys.signing(0x80 + UInt8($0)) }
let registry = FuzzKeys.signing(0x8F)
let endpoints = [
    Endpoint(host: "192.0.2.1", port: 4001), Endpoint(host: "198.51.100.2", port: 4002),
    Endpoint(host: "2001:db8::3", port: 4003), Endpoint(host: "203.0.113.4", port: 65535),
]
let wall0: Int64 = 1_764_100_000_000

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    var limits = BeaconCore.Limits()
    limits.relayDatagramsPerSecond = 3
    limits.targetDatagramsPerSecond = 5
    limits.maxNodes = 3
    var beacon = BeaconCore(limits: limits, issuer: registry.publicKey)
    var time = TunnelTime(now: 1_000_000, wall: wall0)
    var heardFrom: Set<Endpoint> = []
    var vouched: Set<PublicKey> = [] // keys that showed a registry ticket for themselves
    var towardTarget: [Endpoint: Int] = [:] // sent on others' behalf since time last moved
    while !input.isAtEnd {
        let op = input.byte()
        let source = endpoints[Int(op >> 6)]
        let datagram: [UInt8]
        switch op & 0x3F % 5 {
        case 0:
            datagram = input.chunk() ?? []
            // A registry-signed hello the input replays as raw bytes (the seeds hold one) vouches as well.
            if case let .hello(node, _, _, ticket?)? = try? BeaconMessage.parse(datagram), ticket.node == node,
               (try? ticket.verify(issuer: registry.publicKey)) != nil {
                vouched.insert(node)
            }
        case 1:
            let index = Int(input.byte()) % keys.count
            let key = keys[index]
            let timestamp = UInt64(time.wall) &+ UInt64(input.byte()) &* 1000
            let choice = input.byte()
            let lifetime = Int64(choice >> 3) * 10_000 + 1000
            let ticket: BeaconTicket?
            switch choice % 6 {
            case 0: ticket = BeaconTicket.issue(for: key.publicKey, network: 1, now: time.wall, lifetimeMs: lifetime, by: registry)
            case 1: ticket = nil
            case 2: ticket = BeaconTicket.issue(for: keys[(index + 1) % keys.count].publicKey, network: 1, now: time.wall, lifetimeMs: lifetime, by: registry)
            case 3: ticket = BeaconTicket.issue(for: key.publicKey, network: 1, now: time.wall, lifetimeMs: lifetime, by: key)
            case 4: ticket = BeaconTicket.issue(for: key.publicKey, network: 1, now: time.wall - 1_000_000, lifetimeMs: lifetime, by: registry)
            default: ticket = BeaconTicket.issue(for: key.publicKey, network: 2, now: time.wall, lifetimeMs: lifetime, by: registry)
            }
            if choice % 6 == 0 || choice % 6 == 5 { vouched.insert(key.publicKey) }
            datagram = BeaconMessage.signedHello(key, timestamp: timestamp, ticket: ticket).encoded
        case 2:
            let key = keys[Int(input.byte()) % keys.count], target = keys[Int(input.byte()) % keys.count]
            datagram = BeaconMessage.signedConnect(key, to: target.publicKey, timestamp: UInt64(time.wall) &+ UInt64(input.byte()) &* 1000).encoded
        case 3:
            let target = keys[Int(input.byte()) % keys.count]
            datagram = BeaconMessage.relay(target: target.publicKey, datagram: input.chunk() ?? [1]).encoded
        default:
            let step = Int64(input.byte()) * 10_000_000
            time = TunnelTime(now: time.now + step, wall: time.wall + step / 1000)
            beacon.expire(time: time)
            if step > 0 { towardTarget = [:] }
            continue
        }
        heardFrom.insert(source)
        for out in beacon.receive(datagram, from: source, time: time) {
            guard heardFrom.contains(out.to) else { violated("the beacon sent to \(out.to), which it never heard from") }
            guard let message = try? BeaconMessage.parse(out.datagram) else { violated("the beacon sent a datagram that does not parse") }
            switch message {
            case .welcome, .refused: break
            case .punch(let peer, _) where out.to == source:
                guard vouched.contains(peer) else { violated("the beacon introduced \(peer), which showed no registry ticket") }
            case .punch(let peer, _), .relayed(let peer, _):
                guard vouched.contains(peer) else { violated("the beacon relayed for \(peer), which showed no registry ticket") }
                towardTarget[out.to, default: 0] += 1
                guard towardTarget[out.to]! <= 5 else { violated("\(out.to) got more than its budget on others' behalf") }
            default: violated("the beacon sent \(message), which is not meant for nodes")
            }
        }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let chunk = FuzzLayout.chunk
    let tunnelDatagram = TunnelFrame.transport(receiverIndex: 7, sealed: [UInt8](repeating: 0xCD, count: 40)).encoded
    let ticket = BeaconTicket.issue(for: keys[0].publicKey, network: 1, now: wall0, lifetimeMs: 60_000, by: registry)
    let signedHello = BeaconMessage.signedHello(keys[0], timestamp: UInt64(wall0), ticket: ticket).encoded
    // A hello step: op 1 (source in the top bits), key, timestamp delta, ticket choice (0x30: the registry's, 480 s).
    func hello(_ op: UInt8, _ key: UInt8, _ delta: UInt8, ticket: UInt8 = 0x30) -> [UInt8] { [op, key, delta, ticket] }
    func relay(_ op: UInt8, to key: UInt8) -> [UInt8] { [op, key] + chunk(tunnelDatagram) }
    let two: [UInt8] = hello(1, 0, 1) + hello(0x41, 1, 1)
    var fromA: [UInt8] = [], fromB: [UInt8] = []
    for _ in 0..<3 {
        fromA += relay(3, to: 1)
        fromB += relay(0x43, to: 1)
    }
    let unvouched: [UInt8] = hello(1, 0, 1, ticket: 1) + hello(0x41, 1, 1, ticket: 2) + hello(0x81, 2, 1, ticket: 3) + hello(0xC1, 3, 1, ticket: 4)
    let roaming: [UInt8] = hello(1, 0, 1) + hello(0x81, 0, 2) + [3, 1] + hello(0xC1, 2, 1) + [0xC1, 3, 1]
    var seeds: [(name: String, bytes: [UInt8])] = []
    seeds.append(("introduce", two + [2, 0, 1, 2, 0x42, 1, 0, 3]))
    seeds.append(("relay", two + fromA + relay(3, to: 1) + relay(0x43, to: 0)))
    seeds.append(("replayed-hello", [0] + chunk(signedHello) + [0x40] + chunk(signedHello) + [0x80] + chunk(signedHello)))
    seeds.append(("expiry", two + [4, 13, 2, 0, 1, 3, 3, 1] + chunk([1])))
    seeds.append(("roaming", roaming))
    seeds.append(("unvouched", unvouched + relay(3, to: 1) + relay(0x43, to: 0)))
    seeds.append(("target-budget", two + hello(0x81, 2, 1) + fromA + fromB + [4, 1] + fromA + fromB))
    seeds.append(("other-network", hello(1, 0, 1) + hello(0x41, 1, 1, ticket: 5) + relay(3, to: 1) + relay(0x43, to: 0)))
    return seeds
}
