// The small parsers of values from outside (flags, config lines, frame
// fields, registry bodies): ConfigFile, Address, Topic and TopicFilter,
// Endpoint, MetricMessage, Hostname and tags, base64 and hex.
//
// Input: `parser u8 | text`. Checked (a violation traps): what parses
// prints back (`description`, `json`, `encode`) to text that parses to the
// same value.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotRegistry

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let selector = input.byte()
    let bytes = input.rest()
    let text = String(decoding: bytes, as: UTF8.self)
    switch selector % 8 {
    case 0:
        guard let config = try? ConfigFile(parsing: text, path: "/etc/pilot/node.conf") else { return 0 }
        _ = config.arguments
        _ = config.values(of: config.entries.first?.flag ?? "--registry")
        _ = config.rendered(header: ConfigFile.nodeHeader)
    case 1:
        guard let address = try? Address(parsing: text) else { return 0 }
        guard (try? Address(parsing: address.description)) == address else { violated("address \(address) does not read back") }
    case 2:
        // `filter NUL topic`: both parsed, then matched.
        let parts = bytes.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let filter = try? TopicFilter(parts[0])
        if let filter, (try? TopicFilter(filter.description)) != filter { violated("filter \(filter) does not read back") }
        let topic = try? Topic(parts.count > 1 ? parts[1] : parts[0])
        if let topic, (try? Topic(topic.description)) != topic { violated("topic \(topic) does not read back") }
        if let filter, let topic { _ = filter.matches(topic) }
    case 3:
        let listening = selector & 0x80 != 0
        let defaultPort: UInt16? = selector & 0x40 != 0 ? 9000 : nil
        guard let endpoint = try? Endpoint(parsing: text, defaultPort: defaultPort, listening: listening) else { return 0 }
        guard (try? Endpoint(parsing: endpoint.description, listening: listening)) == endpoint else {
            violated("endpoint \(endpoint) does not read back")
        }
    case 4:
        guard let message = try? MetricMessage(text: text) else { return 0 }
        guard (try? MetricMessage(json: message.json)) == message else { violated("metric message \(message.json) does not read back") }
        _ = message.samples
    case 5:
        _ = try? Hostname.validate(text)
        _ = try? Tags.validate(text.split(separator: " ", omittingEmptySubsequences: false).map(String.init))
    case 6:
        guard let decoded = try? Base64.decode(text) else { return 0 }
        guard (try? Base64.decode(Base64.encode(decoded))) == decoded else { violated("base64 does not round-trip") }
        if let key = try? PublicKey(base64: text) {
            guard (try? PublicKey(base64: key.base64)) == key else { violated("public key \(key) does not read back") }
            _ = key.fingerprint
        }
    default:
        guard let decoded = try? Hex.decode(text) else { return 0 }
        guard (try? Hex.decode(Hex.encode(decoded))) == decoded else { violated("hex does not round-trip") }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let key = FuzzKeys.signing(0x51).publicKey
    return [
        ("config", 0, """
            # pilot node configuration: one flag a line; flags on the command line win.
            --registry rv.example:9000
            --hostname=web-01
            --tag web
            --check http:webapp=http://localhost:8080/health
            --rule 'disk_pct > 90 for 2m critical > 95'
            --verbose

            """),
        ("config-crlf", 0, "--registry rv.example:9000\r\n--tag \"a b\"\r\n"),
        ("address", 1, "1:0001.0000.0004"),
        ("address-hex", 1, "65535:ffff.abcd.EF01"),
        ("filter", 2, "metrics/*/web-01\0metrics/cpu/web-01"),
        ("filter-tail", 2, "metrics/*\0metrics/cpu/web-01"),
        ("endpoint", 3, "rv.example:9000"),
        ("endpoint-v6", 3 | 0x80, "[2001:db8::1]:0"),
        ("endpoint-default", 3 | 0x40, "10.0.0.1"),
        ("metric", 4, #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#),
        ("hostname", 5, "web-01.example_site.com"),
        ("tags", 5, "web production us-east-1"),
        ("base64", 6, key.base64),
        ("hex", 7, Hex.encode(key.bytes)),
    ].map { ($0.0, [UInt8($0.1)] + Array($0.2.utf8)) }
}
