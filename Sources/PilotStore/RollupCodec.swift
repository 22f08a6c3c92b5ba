/// A block of rollups (one series, one resolution) as four Gorilla streams
/// sharing their bucket starts: min, max, sum and count, each a column, so
/// each compresses as the series it is (sums and extremes of short decimals
/// stay short decimals; counts are nearly constant). Layout: per column a
/// 4-byte big-endian length, then its Gorilla chunk.
public enum RollupCodec {
    public static func encode(_ rollups: [SeriesStore.Rollup]) throws(Gorilla.CodecError) -> [UInt8] {
        var out: [UInt8] = []
        let columns: [(SeriesStore.Rollup) -> Double] = [\.min, \.max, { snapped($0.sum) }, { Double($0.count) }]
        for column in columns {
            let chunk = try Gorilla.encode(rollups.map { Gorilla.Point($0.start, column($0)) })
            out += withUnsafeBytes(of: UInt32(chunk.count).bigEndian, Array.init)
            out += chunk
        }
        return out
    }

    /// A sum of short decimals is a short decimal, but adding doubles leaves
    /// noise in the last bits (50.1 + 50.2 = 100.30000000000001), which would
    /// cost the sums their compact decimal coding: within 1e-12 relative of
    /// a value with at most four decimal places, the sum is that value.
    static func snapped(_ value: Double) -> Double {
        guard value.isFinite, abs(value) < 1e13 else { return value }
        for scale in [1.0, 10, 100, 1_000, 10_000] {
            let candidate = (value * scale).rounded() / scale
            if abs(candidate - value) <= 1e-12 * max(1, abs(value)) { return candidate }
        }
        return value
    }

    public static func decode(_ bytes: [UInt8]) throws(Gorilla.CodecError) -> [SeriesStore.Rollup] {
        var columns: [[Gorilla.Point]] = []
        var offset = 0
        for _ in 0..<4 {
            guard bytes.count - offset >= 4 else { throw .truncated }
            let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            guard bytes.count - offset >= length else { throw .truncated }
            columns.append(try Gorilla.decode(Array(bytes[offset..<offset + length])))
            offset += length
        }
        let count = columns[0].count
        guard columns.allSatisfy({ $0.count == count }),
              (0..<count).allSatisfy({ i in columns.allSatisfy { $0[i].timestamp == columns[0][i].timestamp } }),
              columns[3].allSatisfy({ $0.value >= 0 && $0.value <= Double(Int32.max) && $0.value.rounded() == $0.value }) else { throw .truncated }
        return (0..<count).map { i in
            SeriesStore.Rollup(start: columns[0][i].timestamp, min: columns[0][i].value, max: columns[1][i].value,
                               sum: columns[2][i].value, count: Int(columns[3][i].value))
        }
    }
}
