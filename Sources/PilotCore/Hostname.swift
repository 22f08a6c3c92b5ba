/// A node's hostname as the fleet sees it: DNS-style labels of letters,
/// digits and hyphens (underscores allowed, as real fleets use them),
/// joined by dots, at most 253 bytes. Case is kept as given.
public enum Hostname {
    public static func validate(_ name: String) throws(ParseError) -> String {
        guard !name.isEmpty else { throw ParseError("hostname", name, "it is empty") }
        guard name.utf8.count <= 253 else { throw ParseError("hostname", name, "longer than 253 bytes") }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty else { throw ParseError("hostname", name, "it has an empty label") }
            guard label.utf8.count <= 63 else { throw ParseError("hostname", name, "label '\(label)' is longer than 63 bytes") }
            guard label.utf8.allSatisfy({ isLabelByte($0) }) else {
                throw ParseError("hostname", name, "only letters, digits, '-', '_' and '.' are allowed")
            }
            guard label.first != "-", label.last != "-" else { throw ParseError("hostname", name, "a label may not start or end with '-'") }
        }
        return name
    }

    private static func isLabelByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }
}
