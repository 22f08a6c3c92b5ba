// TunnelRouter.receive (PilotWire/TunnelRouter.swift), and behind it
// TunnelFrame.parse, TunnelPeer (IK handshakes over datagrams, sessions,
// rekeying) and TransportReceiver: every UDP datagram a node receives.
//
// Two routers with fixed keys, A (under attack) and B (its honest peer),
// joined by a network the input drives. Input: `op u8` steps:
//   0 inject a datagram (chunk) into A, from B's endpoint, a stranger's
//     endpoint (op bit 6) or the relay (op bit 7)
//   1 B sends a payload (chunk) to A      2 A sends a payload to B
//   3 deliver the next datagram towards A 4 ... towards B
//     (op bit 7: flip bits of it first: position byte, mask byte)
//   5 lose the next datagram towards A (bit 7: towards B)
//   6 time passes (byte x 100 ms), both routers tick
//   7 deliver the last datagram A received once more (a replay)
// An input of odd length puts A under load from its first initiation, so
// every initiation needs a cookie (cookie replies, mac2) to be answered.
// Checked (a violation traps): A delivers only payloads B sent, each at
// most once, as coming from B; the same for B.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotWire

let aKey = FuzzKeys.signing(0x71), bKey = FuzzKeys.signing(0x72)
let aAt = Endpoint(host: "192.0.2.1", port: 4001), bAt = Endpoint(host: "198.51.100.2", port: 4002)
let strangerAt = Endpoint(host: "203.0.113.66", port: 9)
let t0 = TunnelTime(now: 1_000_000, wall: 1_764_100_000_000)

struct Node {
    var router: TunnelRouter
    let key: PublicKey
    let at: Endpoint
    var sent: Set<[UInt8]> = []
    var delivered: Set<[UInt8]> = []
    var inbox: [(datagram: [UInt8], from: Route)] = []
    var last: (datagram: [UInt8], from: Route)?
}

struct Network {
    var a: Node
    init(underLoad: Bool = false) {
        var limits = TunnelRouter.Limits()
        if underLoad { limits.handshakes.loadThreshold = 0 }
        a = Node(router: TunnelRouter(identity: aKey, preference: .chacha20poly1305, limits: limits, indexSeed: 1), key: aKey.publicKey, at: aAt)
    }
    var b = Node(router: TunnelRouter(identity: bKey, preference: .chacha20poly1305, indexSeed: 2), key: bKey.publicKey, at: bAt)
    var time = t0
    var serial: UInt16 = 0

    /// Outgoing datagrams of `from` reach `to` if addressed to its endpoint or the relay.
    static func route(_ outgoing: [TunnelRouter.Outgoing], from: Node, to: inout Node) {
        for out in outgoing {
            switch out.to {
            case .relay: to.inbox.append((out.datagram, .relay))
            case .direct(let endpoint) where endpoint == to.at: to.inbox.append((out.datagram, .direct(from.at)))
            case .direct: break // an address nobody answers at
            }
        }
    }

    static func deliver(_ datagram: [UInt8], from source: Route, to node: inout Node, peer: inout Node, time: TunnelTime) {
        node.last = (datagram, source)
        let (outgoing, deliveries) = node.router.receive(datagram, from: source, time: time)
        for delivery in deliveries {
            guard delivery.from == peer.key, peer.sent.contains(delivery.payload) else {
                violated("delivered \(delivery.payload.count) bytes from \(delivery.from) that were never sent")
            }
            guard node.delivered.insert(delivery.payload).inserted else { violated("a payload was delivered twice") }
        }
        route(outgoing, from: node, to: &peer)
    }

    mutating func payload(_ body: [UInt8]) -> [UInt8] {
        serial &+= 1
        return [UInt8(serial >> 8), UInt8(serial & 0xFF)] + body
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    _ = run(&input, underLoad: size % 2 == 1)
    return 0
}

func run(_ input: inout FuzzInput, underLoad: Bool = false) -> Network {
    var net = Network(underLoad: underLoad)
    while !input.isAtEnd {
        let op = input.byte()
        switch op % 8 {
        case 0:
            let from: Route = op & 0x80 != 0 ? .relay : .direct(op & 0x40 != 0 ? strangerAt : bAt)
            Network.deliver(input.chunk() ?? [], from: from, to: &net.a, peer: &net.b, time: net.time)
        case 1:
            let payload = net.payload(input.chunk() ?? [])
            net.b.sent.insert(payload)
            Network.route(net.b.router.send(payload, to: aKey.publicKey, candidates: [aAt], time: net.time), from: net.b, to: &net.a)
        case 2:
            let payload = net.payload(input.chunk() ?? [])
            net.a.sent.insert(payload)
            Network.route(net.a.router.send(payload, to: bKey.publicKey, candidates: [bAt], time: net.time), from: net.a, to: &net.b)
        case 3, 4:
            let towardsA = op % 8 == 3
            guard var next = towardsA ? net.a.inbox.first : net.b.inbox.first else { continue }
            if towardsA { net.a.inbox.removeFirst() } else { net.b.inbox.removeFirst() }
            if op & 0x80 != 0, !next.datagram.isEmpty {
                let position = Int(input.byte()) % next.datagram.count
                next.datagram[position] ^= input.byte() | 1
            }
            if towardsA {
                Network.deliver(next.datagram, from: next.from, to: &net.a, peer: &net.b, time: net.time)
            } else {
                Network.deliver(next.datagram, from: next.from, to: &net.b, peer: &net.a, time: net.time)
            }
        case 5:
            if op & 0x80 == 0 { if !net.a.inbox.isEmpty { net.a.inbox.removeFirst() } } else if !net.b.inbox.isEmpty { net.b.inbox.removeFirst() }
        case 6:
            let step = Int64(input.byte()) * 100_000
            net.time = TunnelTime(now: net.time.now + step, wall: net.time.wall + step / 1000)
            Network.route(net.a.router.tick(time: net.time), from: net.a, to: &net.b)
            Network.route(net.b.router.tick(time: net.time), from: net.b, to: &net.a)
        default:
            if let last = net.a.last { Network.deliver(last.datagram, from: last.from, to: &net.a, peer: &net.b, time: net.time) }
        }
    }
    return net
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    // An initiation from B as it went out once: still valid for any A (the
    // responder's ephemeral is fresh, the initiator's timestamp only has to grow).
    var b = TunnelRouter(identity: bKey, preference: .chacha20poly1305, indexSeed: 2)
    let initiation = b.send(Array("hello".utf8), to: aKey.publicKey, candidates: [aAt], time: t0).first?.datagram ?? []
    let chunk = FuzzLayout.chunk
    // The honest exchange must really get through, or the seeds test nothing.
    var honest = FuzzInput([1] + chunk(Array("hello".utf8)) + [3, 4, 3, 2] + chunk(Array("reply".utf8)) + [4, 3, 4])
    let net = run(&honest)
    precondition(net.a.delivered.count == 1 && net.b.delivered.count == 1, "the honest exchange did not get through")
    return [
        ("honest-exchange", [1] + chunk(Array("hello".utf8)) + [3, 4, 3, 2] + chunk(Array("reply".utf8)) + [4, 3, 4]),
        ("replays", [1] + chunk([1]) + [3, 4, 3, 7, 1] + chunk([2]) + [3, 7, 7]),
        ("tampered", [1] + chunk([1]) + [0x83, 40, 1, 4, 3, 1] + chunk([2]) + [0x83, 60, 0x80]),
        ("rekey-and-keepalive", [1] + chunk([1]) + [3, 4, 3, 6, 200, 3, 4, 6, 255, 6, 255, 3, 4, 3, 4, 1] + chunk([9]) + [3, 4, 3]),
        ("lost-handshake", [1] + chunk([1]) + [5, 6, 12, 3, 4, 3, 0x85, 6, 100, 3]),
        ("injected-initiation", [0] + chunk(initiation) + [0x40] + chunk(initiation) + [0x80] + chunk(initiation)),
        ("garbage", [0] + chunk([1, 4, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 30)) + [0] + chunk([1, 2, 0, 0, 0, 1, 0, 0, 0, 2])),
    ]
}
