/// An overlay address: a 16-bit network id and a 32-bit node id.
///
/// Text form `N:NNNN.HHHH.LLLL`: the network id in decimal, then the 48-bit
/// address in three groups of four hex digits (network, node high, node low),
/// e.g. `1:0001.0000.0004`. The decimal and hex network ids must agree, so a
/// mistyped address is refused rather than silently routed elsewhere.
public struct Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var network: UInt16
    public var node: UInt32

    public init(network: UInt16, node: UInt32) {
        self.network = network
        self.node = node
    }

    /// Parses `N:NNNN.HHHH.LLLL`; throws `AddressError` naming what is wrong.
    public init(parsing text: some StringProtocol) throws(ParseError) {
        let text = String(text)
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ParseError("address", text, "expected N:NNNN.HHHH.LLLL, e.g. 1:0001.0000.0004") }
        let decimal = parts[0]
        guard !decimal.isEmpty, decimal.count <= 5, decimal.allSatisfy({ $0.isASCII && $0.isNumber }),
              let network = UInt16(decimal)
        else { throw ParseError("address", text, "network id '\(decimal)' is not a decimal number from 0 to 65535") }
        let groups = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard groups.count == 3 else { throw ParseError("address", text, "expected three dot-separated groups of four hex digits after ':'") }
        var values: [UInt16] = []
        for group in groups {
            guard group.count == 4, group.allSatisfy({ $0.isHexDigit && $0.isASCII }), let value = UInt16(group, radix: 16)
            else { throw ParseError("address", text, "'\(group)' is not four hex digits") }
            values.append(value)
        }
        guard values[0] == network else {
            throw ParseError("address", text, "network id \(network) does not match its hex form \(groups[0])")
        }
        self.init(network: network, node: UInt32(values[1]) << 16 | UInt32(values[2]))
    }

    public var description: String {
        "\(network):\(Self.hex4(network)).\(Self.hex4(UInt16(node >> 16))).\(Self.hex4(UInt16(node & 0xFFFF)))"
    }

    public static func < (lhs: Address, rhs: Address) -> Bool {
        (lhs.network, lhs.node) < (rhs.network, rhs.node)
    }

    private static func hex4(_ value: UInt16) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}
