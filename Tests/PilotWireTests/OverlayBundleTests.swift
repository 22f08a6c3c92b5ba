import PilotCore
import PilotCrypto
@testable import PilotWire
import Testing

@Suite struct OverlayBundleTests {
    static func message(_ i: Int, bytes: Int) -> [UInt8] {
        OverlayMessage(kind: .stream, sourcePort: 0xFF00 | UInt16(i & 0xFF), destinationPort: 1002,
                       data: [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: bytes)).encoded
    }

    @Test func smallMessagesShareBundlesThatUnpackInOrder() throws {
        let messages = (0..<100).map { Self.message($0, bytes: 60) }
        let payloads = OverlayMessage.pack(messages)
        // 67 bytes each with its length: 18 fit in 1,250 bytes.
        #expect(payloads.count == 6)
        #expect(payloads.allSatisfy { $0.count <= OverlayMessage.maxPayloadBytes })
        let unpacked = try payloads.flatMap { try OverlayMessage.parseAll($0) }
        #expect(unpacked == messages.map { try! OverlayMessage.parse($0) })
    }

    @Test func aMessageThatFitsWithNoOtherGoesAloneUnchanged() throws {
        let full = Self.message(1, bytes: OverlayMessage.maxDatagramData)
        let small = Self.message(2, bytes: 10)
        #expect(OverlayMessage.pack([small]) == [small])
        #expect(OverlayMessage.pack([full, small, full]) == [full, small, full])
        // Two that fit together, then one that fits with neither.
        let half = Self.message(3, bytes: 600)
        let payloads = OverlayMessage.pack([half, half, full])
        #expect(payloads.count == 2)
        #expect(payloads[1] == full)
        #expect(try OverlayMessage.parseAll(payloads[0]).count == 2)
        #expect(try OverlayMessage.parseAll(full) == [try OverlayMessage.parse(full)])
    }

    @Test func aSealedFullBundleStaysWithinOneTunnelDatagram() throws {
        var pair = TunnelPair()
        pair.sendFromA([1])
        try pair.pump()
        let bundles = OverlayMessage.pack((0..<500).map { Self.message($0, bytes: 1 + $0 % 97) })
        #expect(bundles.count > 10)
        for bundle in bundles { pair.sendFromA(bundle) }
        try pair.pump()
        #expect(pair.everyDatagram.allSatisfy { $0.count <= TunnelFrame.maxDatagramBytes })
        #expect(pair.everyDatagram.contains { $0.count > TunnelFrame.maxDatagramBytes - 40 })
        #expect(Array(pair.deliveredToB.dropFirst()) == bundles)
    }

    @Test func malformedBundlesAreRefusedWithTheReason() {
        let inner = Self.message(1, bytes: 3)
        let entry = [UInt8(0), UInt8(inner.count)] + inner
        #expect(throws: WireError.malformed("empty overlay bundle")) { try OverlayMessage.parseAll([3]) }
        #expect(throws: WireError.truncated(what: "overlay bundle length")) { try OverlayMessage.parseAll([3] + entry + [0]) }
        #expect(throws: WireError.truncated(what: "overlay bundle entry")) { try OverlayMessage.parseAll([3] + entry + [0, 200, 2]) }
        #expect(throws: WireError.malformed("overlay bundle entry of 2 bytes, shorter than a message header")) {
            try OverlayMessage.parseAll([3, 0, 2, 1, 1])
        }
        let nested = [UInt8(3)] + entry
        #expect(throws: WireError.malformed("overlay bundle inside a bundle")) {
            try OverlayMessage.parseAll([3, 0, UInt8(nested.count)] + nested)
        }
        #expect(throws: WireError.malformed("unknown overlay message kind 9")) { try OverlayMessage.parseAll([3, 0, 5, 9, 0, 0, 0, 0]) }
    }
}
