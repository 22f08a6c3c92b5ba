// EventRequest.parse and EventReply.parse (PilotEvents/EventWire.swift):
// every line a peer sends to a broker on port 1002, and every line a hub
// sends back.
//
// Input: a stream message (lines). Property checked (a violation traps):
// a line that parses encodes (`line`) to text that parses to the same
// request or reply; nothing crashes or allocates without bound.
import FuzzSupport
import PilotEvents

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    for line in EventLines.split(bytes) {
        if let request = try? EventRequest.parse(line) {
            guard let again = try? EventRequest.parse(ArraySlice(request.line.utf8)), again == request else {
                violated("request \(request.line) does not parse back to itself")
            }
        }
        if let reply = try? EventReply.parse(line) {
            guard let again = try? EventReply.parse(ArraySlice(reply.line.utf8)), again == reply else {
                violated("reply \(reply.line) does not parse back to itself")
            }
        }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    [
        ("publish", #"PUB 7 metrics/cpu/web-01 {"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"ts":1764100000}"# + "\n"),
        ("subscribe", "EPOCH 1f2e\nSUB metrics/* store\nSUB alerts/*/db-01\nUNSUB metrics/*\nACK 12\nRESUME 40\nPING\n"),
        ("replies", "OK SUB metrics/*\nPOSITION 41\nPUBACK 9\nERR 3 invalid payload: nope\nDROP 5\nPONG\n"),
        ("message", #"MSG 12 AAAA/1f 4 alerts/disk_pct/db-01 {"severity":"critical","value":96.5}"# + "\n"),
        ("bad", "PUB x y\nPUB 1 a//b {}\nSUB cp*\nMSG 1\n\r\n"),
    ].map { ($0.0, Array($0.1.utf8)) }
}
