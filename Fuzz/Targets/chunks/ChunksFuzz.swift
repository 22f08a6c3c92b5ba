// Gorilla.decode and RollupCodec.decode (PilotStore): the compressed
// chunks and rollup blocks the store reads back from its SQLite file, which
// a disk fault or a hand edit can corrupt.
//
// Input: one byte choosing the decoder, then the bytes. Properties checked
// (a violation traps): a chunk that decodes to samples in time order
// encodes and decodes back to the same samples, bit for bit; a rollup
// block that decodes encodes and decodes back to the same buckets; nothing
// crashes or allocates without bound.
import FuzzSupport
import PilotStore

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let rollups = input.byte() & 1 == 1
    let bytes = Array(input.bytes.dropFirst())
    if rollups {
        guard let decoded = try? RollupCodec.decode(bytes) else { return 0 }
        guard zip(decoded, decoded.dropFirst()).allSatisfy({ $0.start < $1.start }) else { return 0 }
        guard let again = try? RollupCodec.decode(RollupCodec.encode(decoded)) else { violated("a decoded rollup block does not encode") }
        guard again.count == decoded.count, zip(again, decoded).allSatisfy({ a, b in
            a.start == b.start && a.count == b.count && a.min.bitPattern == b.min.bitPattern && a.max.bitPattern == b.max.bitPattern
                && (a.sum.bitPattern == b.sum.bitPattern || abs(a.sum - b.sum) <= 1e-12 * max(1, abs(b.sum)))
        }) else { violated("a rollup block does not round-trip") }
    } else {
        guard let decoded = try? Gorilla.decode(bytes) else { return 0 }
        guard zip(decoded, decoded.dropFirst()).allSatisfy({ $0.timestamp < $1.timestamp }) else { return 0 }
        guard let again = try? Gorilla.decode(Gorilla.encode(decoded)) else { violated("decoded samples in order do not encode") }
        guard again.count == decoded.count,
              zip(again, decoded).allSatisfy({ $0.timestamp == $1.timestamp && $0.value.bitPattern == $1.value.bitPattern }) else {
            violated("a chunk does not round-trip")
        }
    }
    return 0
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let walk = (0..<240).map { Gorilla.Point(1_764_000_000_000 + Int64($0) * 30_000, Double(($0 * 7) % 1000) / 10) }
    let odd = [Gorilla.Point(-5, .nan), Gorilla.Point(0, -0.0), Gorilla.Point(1, .infinity), Gorilla.Point(1 << 40, -.greatestFiniteMagnitude)]
    let counter = (0..<100).map { Gorilla.Point(Int64($0) * 10_000 + Int64($0 % 3), Double($0 * 123_457)) }
    let buckets = (0..<50).map { SeriesStore.Rollup(start: Int64($0) * 300_000, min: Double($0) / 10, max: Double($0), sum: Double($0) * 5.5, count: 10) }
    return [
        ("walk", [0] + ((try? Gorilla.encode(walk)) ?? [])),
        ("odd", [0] + ((try? Gorilla.encode(odd)) ?? [])),
        ("counter", [0] + ((try? Gorilla.encode(counter)) ?? [])),
        ("rollups", [1] + ((try? RollupCodec.encode(buckets)) ?? [])),
    ]
}
