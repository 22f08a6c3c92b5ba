// StreamMux.receive (PilotWire/StreamMux.swift): the stream segments a
// peer sends over a tunnel (connections between virtual ports).
//
// Input: `policy u8 | op u8 steps`: policy bit 0 trusts the peer on every
// port (else only 7 and 444); bit 1 makes maxConnections 2 (else 64).
//   0 an overlay message (chunk) from peer p (op bit 7 picks one of two)
//   1 poll(now)             2 now += byte ms, poll
//   3 open a connection to the peer's port (u16)
//   4 send a message (chunk) on the connection last opened or accepted
//   5 reset it
// Checked (a violation traps): every payload the mux sends parses as an
// overlay stream message addressed to the peer it is for.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotWire

let peers = [FuzzKeys.signing(0x91).publicKey, FuzzKeys.signing(0x92).publicKey]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let policy = input.byte()
    var mux = StreamMux(idSeed: 7)
    // Few connections keep every poll cheap; bit 1 reaches the limit at once.
    mux.maxConnections = policy & 2 != 0 ? 2 : 64
    for port: UInt16 in [OverlayMessage.echoPort, OverlayMessage.trustPort, OverlayMessage.eventStreamPort] { mux.listen(on: port) }
    let trusted = policy & 1 != 0
    var now: Int64 = 1_000_000
    var current: StreamMux.ConnectionID?
    func check(_ outgoing: [StreamMux.Outgoing]) {
        for out in outgoing {
            guard let message = try? OverlayMessage.parse(out.payload), message.kind == .stream, message.data.count >= 5 else {
                violated("the mux sent a payload that is not a stream message")
            }
        }
    }
    while !input.isAtEnd {
        let op = input.byte()
        let peer = peers[Int(op >> 7)]
        switch op & 0x7F % 6 {
        case 0:
            guard let message = try? OverlayMessage.parse(input.chunk() ?? []) else { continue }
            let (outgoing, events) = mux.receive(message, from: peer, now: now) { port in
                trusted || port == OverlayMessage.echoPort || port == OverlayMessage.trustPort
            }
            check(outgoing)
            for case .accepted(let id, _) in events { current = id }
        case 1:
            check(mux.poll(now: now).outgoing)
        case 2:
            now += Int64(input.byte()) * 1000
            check(mux.poll(now: now).outgoing)
        case 3:
            current = try? mux.open(to: peer, port: input.uint16(), now: now)
        case 4:
            if let current { _ = try? mux.send(input.chunk() ?? [], on: current) }
        default:
            if let current { check(mux.reset(current, reason: "fuzz")) }
        }
        if let next = mux.nextDeadline(), next < now - 3_600_000_000 { violated("a deadline an hour in the past") }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    // What an honest peer's mux sends when it opens a connection to port 7 and 1002.
    var peer = StreamMux(idSeed: 99)
    let echo = try! peer.open(to: FuzzKeys.signing(0x90).publicKey, port: OverlayMessage.echoPort, now: 1_000_000)
    try! peer.send(Array("ping".utf8), on: echo)
    let events = try! peer.open(to: FuzzKeys.signing(0x90).publicKey, port: OverlayMessage.eventStreamPort, now: 1_000_000)
    try! peer.send([UInt8](repeating: 7, count: 3000), on: events)
    let segments = peer.poll(now: 1_000_000).outgoing.map(\.payload)
    let chunk = FuzzLayout.chunk
    var accepted: [UInt8] = [0]
    for segment in segments { accepted += [0] + chunk(segment) }
    accepted += [2, 10, 4] + chunk(Array("pong".utf8)) + [2, 10, 5]
    return [
        ("accept-untrusted", accepted),
        ("accept-trusted", [1] + accepted.dropFirst()),
        ("open-and-send", [0, 3, 0, 7, 4] + chunk(Array("hello".utf8)) + [1, 2, 255, 2, 255]),
        ("stale-and-reset", [2, 0] + chunk([2, 0xFF, 0x01, 0, 7, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 3]) + [0] + chunk([2, 0xFF, 0x01, 0, 7, 0, 0, 0, 9, 2] + Array("bye".utf8))),
    ]
}
