// The datagram codecs of the overlay (PilotWire): TunnelFrame.parse (every
// UDP datagram a node receives), BeaconMessage.parse (every datagram the
// beacon and the nodes exchange), OverlayMessage.parseAll (what a tunnel
// delivers: one message or a bundle) and BeaconTicket.parse (the registry's ticket, inside a hello
// and in the registry's answers).
//
// Input: `codec u8 | datagram`. Checked (a violation traps): a tunnel frame,
// an overlay message (a bundle: re-packs) or a ticket re-encodes to exactly the bytes it came
// from; a beacon message re-encodes to bytes that parse to the same message.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotWire

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let codec = input.byte() % 4
    let datagram = input.rest()
    switch codec {
    case 0:
        guard let frame = try? TunnelFrame.parse(datagram) else { return 0 }
        guard sameBytes(frame.encoded, datagram) else { violated("tunnel frame re-encodes differently") }
    case 1:
        guard let messages = try? OverlayMessage.parseAll(datagram), !messages.isEmpty else { return 0 }
        if datagram.first != 3 {
            guard messages.count == 1, sameBytes(messages[0].encoded, datagram) else { violated("overlay message re-encodes differently") }
        } else if messages.count > 1 {
            // A bundle packs back into exactly its own bytes when they are the limit.
            let repacked = OverlayMessage.pack(messages.map(\.encoded), limit: datagram.count)
            guard repacked.count == 1, sameBytes(repacked[0], datagram) else { violated("overlay bundle re-packs differently") }
        }
    case 3:
        guard let ticket = try? BeaconTicket.parse(datagram) else { return 0 }
        guard sameBytes(ticket.encoded, datagram) else { violated("beacon ticket re-encodes differently") }
        _ = try? ticket.verify(issuer: FuzzKeys.signing(0x53).publicKey)
        guard (try? BeaconTicket(base64: ticket.base64)) == ticket else { violated("beacon ticket does not survive base64") }
    default:
        let isBeacon = BeaconMessage.isBeaconDatagram(datagram)
        guard let message = try? BeaconMessage.parse(datagram) else { return 0 }
        guard isBeacon else { violated("a datagram parsed as a beacon message but isBeaconDatagram says no") }
        _ = try? message.verifySignature()
        guard let again = try? BeaconMessage.parse(message.encoded) else { violated("beacon message \(message) does not re-parse") }
        if case .refused = message { return 0 } // the reason is cut at 300 bytes, possibly mid-character
        guard again == message else { violated("beacon message \(message) re-parses as \(again)") }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let key = FuzzKeys.signing(0x51), other = FuzzKeys.signing(0x52)
    let ticket = BeaconTicket.issue(for: key.publicKey, network: 1, now: 1_764_100_000_000, lifetimeMs: 1_800_000, by: FuzzKeys.signing(0x53))
    let transport = TunnelFrame.transport(receiverIndex: 0xDEAD_BEEF, sealed: [UInt8](repeating: 0xAB, count: 40)).encoded
    return [
        ("tunnel-initiation", [0] + TunnelFrame.initiation(senderIndex: 7, message: [UInt8](repeating: 1, count: 106)).encoded),
        ("tunnel-response", [0] + TunnelFrame.response(senderIndex: 8, receiverIndex: 7, message: [UInt8](repeating: 2, count: 64)).encoded),
        ("tunnel-transport", [0] + transport),
        ("tunnel-cookie-reply", [0] + TunnelFrame.cookieReply(receiverIndex: 7, nonce: [UInt8](repeating: 3, count: 12), sealed: [UInt8](repeating: 4, count: 32)).encoded),
        ("overlay-datagram", [1] + OverlayMessage(sourcePort: 40000, destinationPort: OverlayMessage.echoPort, data: Array("ping".utf8)).encoded),
        ("overlay-stream", [1] + OverlayMessage(kind: .stream, sourcePort: 0xFF01, destinationPort: 1002, data: [0, 0, 0, 1, 1, 1, 3, 0, 0, 0, 0]).encoded),
        ("overlay-bundle", [1] + OverlayMessage.pack([
            OverlayMessage(kind: .stream, sourcePort: 0xFF01, destinationPort: 1002, data: [0, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0]).encoded,
            OverlayMessage(kind: .stream, sourcePort: 0xFF01, destinationPort: 1002, data: [0, 0, 0, 1, 0, 1, 3, 0, 0, 0, 0, 65]).encoded,
        ])[0]),
        ("beacon-hello", [2] + BeaconMessage.signedHello(key, timestamp: 1_764_100_000_000, ticket: nil).encoded),
        ("beacon-hello-ticket", [2] + BeaconMessage.signedHello(key, timestamp: 1_764_100_000_000, ticket: ticket).encoded),
        ("beacon-ticket", [3] + ticket.encoded),
        ("beacon-connect", [2] + BeaconMessage.signedConnect(key, to: other.publicKey, timestamp: 1_764_100_000_001).encoded),
        ("beacon-welcome-v4", [2] + BeaconMessage.welcome(observed: Endpoint(host: "203.0.113.9", port: 4000)).encoded),
        ("beacon-punch-v6", [2] + BeaconMessage.punch(peer: other.publicKey, endpoint: Endpoint(host: "2001:db8::7", port: 4001)).encoded),
        ("beacon-relay", [2] + BeaconMessage.relay(target: other.publicKey, datagram: transport).encoded),
        ("beacon-relayed", [2] + BeaconMessage.relayed(source: key.publicKey, datagram: transport).encoded),
        ("beacon-refused", [2] + BeaconMessage.refused("the target is not connected to this beacon").encoded),
    ]
}
