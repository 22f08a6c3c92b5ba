// BeaconCore.receive (PilotWire/BeaconCore.swift): every UDP datagram the
// beacon receives, from anyone on the internet.
//
// Input: `op u8` steps; the source of a datagram is one of four endpoints
// (op >> 6):
//   0 a datagram as sent (chunk)
//   1 a hello signed by node key k (byte), timestamp wall + delta (byte, s)
//   2 a connect signed by key k to key j (bytes), timestamp as above
//   3 a relay to key j (byte) of a datagram (chunk)
//   4 time passes (byte x 10 s), then expire()
// The harness signs hello and connect, so the fuzzer reaches what lies
// behind the signature check. Checked (a violation traps): everything the
// beacon sends parses as a beacon message of a kind meant for nodes, and
// goes to an endpoint it heard from.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotWire

let keys = (0..<4).map { FuzzKeys.signing(0x80 + UInt8($0)) }
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
    limits.maxNodes = 3
    var beacon = BeaconCore(limits: limits)
    var time = TunnelTime(now: 1_000_000, wall: wall0)
    var heardFrom: Set<Endpoint> = []
    while !input.isAtEnd {
        let op = input.byte()
        let source = endpoints[Int(op >> 6)]
        let datagram: [UInt8]
        switch op & 0x3F % 5 {
        case 0:
            datagram = input.chunk() ?? []
        case 1:
            let key = keys[Int(input.byte()) % keys.count]
            datagram = BeaconMessage.signedHello(key, timestamp: UInt64(time.wall) &+ UInt64(input.byte()) &* 1000).encoded
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
            continue
        }
        heardFrom.insert(source)
        for out in beacon.receive(datagram, from: source, time: time) {
            guard heardFrom.contains(out.to) else { violated("the beacon sent to \(out.to), which it never heard from") }
            guard let message = try? BeaconMessage.parse(out.datagram) else { violated("the beacon sent a datagram that does not parse") }
            switch message {
            case .welcome, .punch, .relayed, .refused: break
            default: violated("the beacon sent \(message), which is not meant for nodes")
            }
        }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let chunk = FuzzLayout.chunk
    let tunnelDatagram = TunnelFrame.transport(receiverIndex: 7, sealed: [UInt8](repeating: 0xCD, count: 40)).encoded
    let hello = BeaconMessage.signedHello(keys[0], timestamp: UInt64(wall0)).encoded
    return [
        ("introduce", [1, 0, 1, 0x41, 1, 1, 2, 0, 1, 2, 0x42, 1, 0, 3]),
        ("relay", [1, 0, 1, 0x41, 1, 1, 3, 1] + chunk(tunnelDatagram) + [3, 1] + chunk(tunnelDatagram) + [3, 1] + chunk(tunnelDatagram)
            + [3, 1] + chunk(tunnelDatagram) + [0x43, 0] + chunk(tunnelDatagram)),
        ("replayed-hello", [0] + chunk(hello) + [0x40] + chunk(hello) + [0x80] + chunk(hello)),
        ("expiry", [1, 0, 1, 0x41, 1, 1, 4, 13, 2, 0, 1, 3, 3, 1] + chunk([1])),
        ("roaming", [1, 0, 1, 0x81, 0, 2, 3, 1, 1, 0xC1, 2, 1, 0xC1, 3, 1]),
    ]
}
