// JSONValue.parse (PilotCore/JSONValue.swift): every JSON payload from a
// peer (registry requests and responses, control-socket lines, event
// stream messages, webhook bodies).
//
// Input: the JSON text itself. Properties checked (a violation traps): a
// value that parses prints (`description`) to text that parses back to an
// equal value, and printing that again gives the same text; and
// `JSONValue.validate` (the hub's check, which builds nothing) accepts
// exactly what `parse` accepts as an object.
import FuzzSupport
import PilotCore

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    // The registry's limits and the default ones.
    for limits in [JSONValue.Limits(maxBytes: 16 * 1024, maxDepth: 8), JSONValue.Limits()] {
        let parsed = try? JSONValue.parse(bytes, limits: limits)
        let isObject = if case .object? = parsed { true } else { false }
        let validated = (try? JSONValue.validate(bytes, limits: limits)) != nil
        guard validated == isObject else { violated("validate says \(validated), parse says object \(isObject)") }
        guard let value = parsed else { continue }
        let text = value.description
        let again: JSONValue
        do {
            // Printing may lengthen numbers ("9e15" prints all its digits): no size limit here.
            again = try JSONValue.parse(Array(text.utf8), limits: .init(maxBytes: .max, maxDepth: limits.maxDepth))
        } catch {
            violated("\(text) does not parse back: \(error)")
        }
        guard again == value else { violated("\(text) parses back to a different value: \(again)") }
        guard again.description == text else { violated("\(text) prints differently once re-parsed: \(again.description)") }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    [
        ("register", #"{"id":1,"op":"register","signed":"{\"op\":\"register\",\"ts\":1764100000000,\"nonce\":\"AAECAwQFBgcICQoLDA0ODw==\",\"body\":{\"hostname\":\"web-01\",\"tags\":[\"web\",\"production\"]}}","sig":"c2lnbmF0dXJl"}"#),
        ("search", #"{"id":2,"op":"search","body":{"query":"tag:production","online":true}}"#),
        ("response", #"{"id":2,"ok":true,"body":{"nodes":[{"hostname":"db-01","address":"1:0001.0000.0003","online":false,"last_seen":null}]}}"#),
        ("metric", #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"#),
        ("numbers", "[0,-0,1.5e300,-2.25E-7,9007199254740993,123456789012345678901234567890,0.1e1]"),
        ("strings", #"["\u00e9\ud83d\ude00","\"\\\/\b\f\n\r\t","caf\u0065\u0301","\u0000\u001f\u007f"]"#),
        ("nested", "  [[[[[[[[{\"a\":[{}]}]]]]]]]]\n"),
        ("literals", "{\"t\":true,\"f\":false,\"n\":null}"),
    ].map { ($0.0, Array($0.1.utf8)) }
}
