import PilotCore
import Testing

@Suite struct AddressTests {
    @Test(arguments: [
        ("1:0001.0000.0004", UInt16(1), UInt32(4)),
        ("0:0000.0000.0001", 0, 1),
        ("65535:FFFF.FFFF.FFFF", 65535, 0xFFFF_FFFF),
        ("10:000A.00A3.F291", 10, 0x00A3_F291),
    ])
    func parsesAndPrintsRoundTrip(text: String, network: UInt16, node: UInt32) throws {
        let address = try Address(parsing: text)
        #expect(address == Address(network: network, node: node))
        #expect(address.description == text)
        #expect(try Address(parsing: address.description) == address)
    }

    @Test func acceptsLowercaseHexButPrintsUppercase() throws {
        #expect(try Address(parsing: "10:000a.00a3.f291").description == "10:000A.00A3.F291")
    }

    @Test(arguments: [
        ("", "expected N:NNNN.HHHH.LLLL"),
        ("1-0001.0000.0004", "expected N:NNNN.HHHH.LLLL"),
        ("1:0001.0000.0004:7", "expected N:NNNN.HHHH.LLLL"),
        (":0001.0000.0004", "network id"),
        ("x:0001.0000.0004", "network id"),
        ("65536:0000.0000.0004", "network id"),
        ("-1:0001.0000.0004", "network id"),
        ("1:0001.0000", "three dot-separated groups"),
        ("1:0001.0000.0004.0001", "three dot-separated groups"),
        ("1:001.0000.0004", "'001' is not four hex digits"),
        ("1:0001.00000.0004", "'00000' is not four hex digits"),
        ("1:0001.00G0.0004", "'00G0' is not four hex digits"),
        ("1:0001..0004", "'' is not four hex digits"),
        ("1:0002.0000.0004", "network id 1 does not match its hex form 0002"),
        ("1:+001.0000.0004", "is not four hex digits"),
    ])
    func refusesMalformedText(text: String, reason: String) {
        #expect {
            try Address(parsing: text)
        } throws: { error in
            let message = "\(error)"
            return message.contains("invalid address '\(text)'") && message.contains(reason)
        }
    }

    @Test func ordersByNetworkThenNode() throws {
        let addresses = try ["2:0002.0000.0001", "1:0001.0000.0009", "1:0001.0000.0002"].map { try Address(parsing: $0) }
        #expect(addresses.sorted().map(\.description) == ["1:0001.0000.0002", "1:0001.0000.0009", "2:0002.0000.0001"])
    }
}
