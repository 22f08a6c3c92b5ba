// RegistryEngine.handle (PilotRegistry/RegistryEngine.swift): every
// decrypted request a node sends to the registry.
//
// Input: `flags u8 | chunk...`; one chunk is one request:
//   `h u8 | body`: session = h & 3 (four fixed node keys), time advances
//   by (h >> 3) seconds; h >= 0xF8 jumps 200 s and sweeps presence.
//   h & 4 == 0: body is the request as sent.
//   h & 4 != 0: body is `op u8 | signed text`: the harness signs the text
//   with the session's key and wraps it as {"id","op","signed","sig"}, so
//   the fuzzer reaches everything behind the signature check.
// flags: bit 0 join token required, bit 1 start from stored records,
// bit 2 a registration rate limit of one.
// Checked (a violation traps): every response is a JSON object with a
// boolean "ok"; the directory stays consistent (unique hostnames and
// addresses, lookups by both agree with the listing); a beacon ticket in
// an answer is the registry's, for the asking key, and only for a key the
// directory lists.
import FuzzSupport
import PilotCore
import PilotCrypto
import PilotRegistry
import PilotWire

let t0: Int64 = 1_764_100_000_000
let nodeKeys = (0..<4).map { FuzzKeys.signing(0x51 + UInt8($0)) }
let handshakeHash = [UInt8](repeating: 0xAA, count: 32)
let sessions = nodeKeys.enumerated().map { index, key in
    SessionContext(identity: key.publicKey, handshakeHash: handshakeHash, clientAddress: index < 2 ? "192.0.2.1" : "198.51.100.\(index)")
}
let joinToken = "fleet-secret"
let registryKey = FuzzKeys.signing(0x5F)
let storedRecords = [
    NodeRecord(publicKey: nodeKeys[2].publicKey, address: Address(network: 1, node: 7), hostname: "db-01",
               tags: ["db"], endpoints: ["203.0.113.7:4000"], registeredAt: t0 / 1000 - 86_400),
    NodeRecord(publicKey: nodeKeys[3].publicKey, address: Address(network: 1, node: 3), hostname: "",
               tags: [], endpoints: [], registeredAt: t0 / 1000 - 3_600),
    NodeRecord(publicKey: FuzzKeys.signing(0x60).publicKey, address: Address(network: 2, node: 0xFFFF_FFFF), hostname: "elsewhere",
               tags: [], endpoints: [], registeredAt: 0),
]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    _ = sessions.count
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    var configuration = RegistryEngine.Configuration()
    if flags & 1 != 0 { configuration.joinToken = joinToken }
    if flags & 4 != 0 { configuration.registrationBurst = 1; configuration.registrationsPerMinute = 1 }
    var now = t0
    var engine = RegistryEngine(configuration: configuration, records: flags & 2 != 0 ? storedRecords : [], now: now, ticketIssuer: registryKey)
    var id = 0
    while let chunk = input.chunk() {
        var request = FuzzInput(chunk)
        let h = request.byte()
        if h >= 0xF8 {
            now += 200_000
            _ = engine.sweep(now: now)
        } else {
            now += Int64(h >> 3) * 1000
        }
        let session = sessions[Int(h & 3)]
        let message: [UInt8]
        if h & 4 != 0 {
            let operation = RegistryOperation.allCases[Int(request.byte()) % RegistryOperation.allCases.count]
            let signed = String(decoding: request.rest(), as: UTF8.self)
            id += 1
            message = Array(JSONValue.object(JSONObject([
                ("id", .number(Double(id))), ("op", .string(operation.rawValue)), ("signed", .string(signed)),
                ("sig", .string(Base64.encode(nodeKeys[Int(h & 3)].sign(Array(signed.utf8))))),
            ])).description.utf8)
        } else {
            message = request.rest()
        }
        let outcome = engine.handle(message, session: session, now: now)
        guard let response = try? JSONValue.parse(outcome.response, limits: .init(maxBytes: .max, maxDepth: 32)),
              case .bool? = response["ok"]
        else { violated("response is not a JSON object with \"ok\": \(String(decoding: outcome.response, as: UTF8.self))") }
        if let text = response["body"]?["beacon_ticket"]?.stringValue {
            guard let ticket = try? BeaconTicket(base64: text), (try? ticket.verify(issuer: registryKey.publicKey)) != nil else {
                violated("a beacon ticket that does not parse or verify: \(text)")
            }
            guard ticket.node == session.identity, engine.directory.record(for: session.identity) != nil else {
                violated("a beacon ticket for \(ticket.node), asked by \(session.identity), which the directory does not list")
            }
        }
        checkDirectory(engine.directory, now: now)
    }
    return 0
}

func checkDirectory(_ directory: Directory, now: Int64) {
    let listed = directory.search("", onlineOnly: false, now: now)
    var names: Set<String> = [], addresses: Set<Address> = []
    for view in listed {
        guard names.insert(view.record.hostname.lowercased()).inserted else { violated("hostname \(view.record.hostname) listed twice") }
        guard addresses.insert(view.record.address).inserted else { violated("address \(view.record.address) listed twice") }
        guard directory.lookup(hostname: view.record.hostname, now: now)?.record == view.record else {
            violated("lookup of \(view.record.hostname) disagrees with the listing")
        }
        guard directory.lookup(address: view.record.address, now: now)?.record == view.record else {
            violated("lookup of \(view.record.address) disagrees with the listing")
        }
    }
    guard listed.count == directory.count else { violated("listing has \(listed.count) nodes, count says \(directory.count)") }
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let proof = RegistryProtocol.joinProof(token: joinToken, handshakeHash: handshakeHash)
    func signed(_ op: String, ts: Int64, nonce: UInt8, _ body: String) -> [UInt8] {
        let text = #"{"op":"\#(op)","ts":\#(ts),"nonce":"\#(Base64.encode([UInt8](repeating: nonce, count: 16)))","body":\#(body)}"#
        return Array(text.utf8)
    }
    func op(_ operation: RegistryOperation) -> UInt8 { UInt8(RegistryOperation.allCases.firstIndex(of: operation)!) }
    let register = [4 | 0, op(.register)] + signed("register", ts: t0, nonce: 1,
        #"{"hostname":"web-01","tags":["web","production"],"endpoints":["203.0.113.5:4000","[2001:db8::1]:4000"]}"#)
    let registerOther = [4 | 1, op(.register)] + signed("register", ts: t0, nonce: 2, #"{"hostname":"web-02","tags":["web"]}"#)
    let heartbeat = [(30 << 3) | 4 | 0, op(.heartbeat)] + signed("heartbeat", ts: t0 + 30_000, nonce: 3, "{}")
    let setTags = [4 | 1, op(.setTags)] + signed("set_tags", ts: t0 + 30_000, nonce: 4, #"{"tags":["db","eu-west"]}"#)
    let rename = [4 | 1, op(.setHostname)] + signed("set_hostname", ts: t0 + 30_000, nonce: 5, #"{"hostname":"WEB-01"}"#)
    let leave = [4 | 0, op(.deregister)] + signed("deregister", ts: t0 + 30_000, nonce: 6, "{}")
    let search = [1] + Array(#"{"id":7,"op":"search","body":{"query":"tag:web","online":true}}"#.utf8)
    let lookup = [0] + Array(#"{"id":8,"op":"lookup","body":{"address":"1:0001.0000.0002"}}"#.utf8)
    let lookupName = [2] + Array(#"{"id":9,"op":"lookup","body":{"hostname":"web-01"}}"#.utf8)
    let watch = [3] + Array(#"{"id":10,"op":"watch"}"#.utf8)
    let joined = [4 | 0, op(.register)] + signed("register", ts: t0, nonce: 7, #"{"hostname":"web-01","join_proof":"\#(proof)"}"#)
    let heartbeatStored = [4 | 2, op(.heartbeat)] + signed("heartbeat", ts: t0, nonce: 8, "{}")
    let renameStored = [4 | 2, op(.setHostname)] + signed("set_hostname", ts: t0, nonce: 9, #"{"hostname":"db-02"}"#)
    let registerTicket = [4 | 0, op(.register)] + signed("register", ts: t0, nonce: 10, #"{"hostname":"web-01","beacon_ticket":true}"#)
    let renewTicket = [(30 << 3) | 4 | 0, op(.heartbeat)] + signed("heartbeat", ts: t0 + 30_000, nonce: 11, #"{"beacon_ticket":true}"#)
    let strangerTicket = [4 | 3, op(.heartbeat)] + signed("heartbeat", ts: t0 + 30_000, nonce: 12, #"{"beacon_ticket":true}"#)
    return [
        ("lifecycle", [0] + FuzzLayout.chunks([register, registerOther, heartbeat, setTags, search, lookup, lookupName, watch, rename, leave, [0xF8], search])),
        ("join-token", [1] + FuzzLayout.chunks([joined, search, heartbeat])),
        ("stored", [2] + FuzzLayout.chunks([heartbeatStored, renameStored, search, [0xFF], lookupName])),
        ("rate-limited", [4] + FuzzLayout.chunks([register, registerOther])),
        ("beacon-ticket", [0] + FuzzLayout.chunks([registerTicket, renewTicket, strangerTicket])),
        ("replay", [0] + FuzzLayout.chunks([register, register, [0], [2] + Array(#"{"id":1e300,"op":"x"}"#.utf8)])),
    ]
}
