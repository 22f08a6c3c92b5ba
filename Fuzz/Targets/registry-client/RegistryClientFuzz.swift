// RegistryProtocol.nodeView (PilotRegistry/RegistryProtocol.swift): how a
// node reads the registry's answers to lookups and searches, and the
// presence events it pushes (the registry is a peer like any other: a
// compromised or buggy one must not crash the nodes).
//
// Input: one message from the registry, as JSON text. Parsed with the
// client's limits, then every node in it is read as the client does:
// body.node, each of body.nodes, and a presence event's address.
// Checked (a violation traps): a node that reads writes back (json(_:)) to
// JSON that reads to the same node.
import FuzzSupport
import PilotCore
import PilotRegistry

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    guard let message = try? JSONValue.parse(bytes, limits: .init(maxBytes: RegistryProtocol.maxMessageBytes, maxDepth: 8)) else { return 0 }
    var nodes: [JSONValue] = []
    if let node = message["body"]?["node"] { nodes.append(node) }
    if case .array(let list)? = message["body"]?["nodes"] { nodes += list }
    if message["event"]?.stringValue == "presence", let text = message["body"]?["address"]?.stringValue {
        _ = try? Address(parsing: text)
    }
    for value in nodes {
        guard let view = try? RegistryProtocol.nodeView(value) else { continue }
        let written = RegistryProtocol.json(view)
        guard let again = try? RegistryProtocol.nodeView(written) else { violated("\(written) does not read back") }
        guard again == view else { violated("\(written) reads back as another node") }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let key = FuzzKeys.signing(0x51).publicKey.base64
    let node = #"{"hostname":"web-01","address":"1:0001.0000.0001","public_key":"\#(key)","tags":["web","production"],"endpoints":["203.0.113.5:4000"],"online":true,"presence":"online","last_seen":1764100030,"registered_at":1764100000}"#
    return [
        ("lookup", #"{"id":3,"ok":true,"body":{"node":\#(node)}}"#),
        ("search", #"{"id":4,"ok":true,"body":{"nodes":[\#(node),\#(node.replacing("web-01", with: "db-01"))]}}"#),
        ("unknown", #"{"id":5,"ok":true,"body":{"node":{"hostname":"db-01","address":"1:0001.0000.0002","public_key":"\#(key)","tags":[],"presence":"unknown","last_seen":null,"registered_at":0}}}"#),
        ("event", #"{"event":"presence","body":{"address":"1:0001.0000.0003","hostname":"db-01","presence":"offline"}}"#),
        ("error", #"{"id":6,"ok":false,"code":"not_found","error":"no node named 'x'"}"#),
    ].map { ($0.0, Array($0.1.utf8)) }
}
