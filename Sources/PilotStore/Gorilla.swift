/// Compressed chunks of (timestamp, value) samples, after Facebook's
/// Gorilla paper (Pelkonen et al., VLDB 2015): timestamps as
/// delta-of-deltas in variable-width buckets, values as the XOR with the
/// previous value, storing only the meaningful bits. Timestamps are Unix
/// milliseconds; samples must be in strictly increasing time order.
///
///     header   count u16 | values mode u3 (0: XOR, 1...5: decimals 0...4)
///              | first timestamp i64 | first value (u64 bits, or i64 scaled)
///     then per sample: delta-of-delta bucket, then the value
///       dod == 0            '0'
///       |dod| < 2^13        '10'   + 14 bits
///       |dod| < 2^16        '110'  + 17 bits
///       |dod| < 2^19        '1110' + 20 bits
///       otherwise           '1111' + 64 bits
///       value == previous   '0'
///       same window         '10'  + meaningful bits
///       new window          '11'  + 5 bits leading zeros + 6 bits length - 1 + meaningful bits
///
/// Better than the paper for what agents send: when every value of a chunk
/// is a decimal with at most four places (42.1, 97, 0.52), the values are
/// stored as scaled integers, each as its delta from the previous one:
///       delta == 0          '0'
///       |delta| < 2^3       '10'    + 4 bits
///       |delta| < 2^7       '110'   + 8 bits
///       |delta| < 2^15      '1110'  + 16 bits
///       |delta| < 2^19      '11110' + 20 bits (counters)
///       |delta| < 2^31      '111110' + 32 bits
///       otherwise           '111111' + 64 bits
/// A random walk in tenths then costs a few bits a sample instead of the
/// XOR's dozens (measured in the tests and `pilot-bench store`).
public enum Gorilla {
    public static let maxSamples = 65_535

    /// A time and a value: what a chunk holds of one series, which the
    /// chunk does not name (a `PilotCore.Sample` does).
    public struct Point: Equatable, Sendable {
        public var timestamp: Int64
        public var value: Double
        public init(_ timestamp: Int64, _ value: Double) {
            self.timestamp = timestamp
            self.value = value
        }

        /// Equality of the stored bits: NaN equals NaN, -0.0 is not 0.0.
        public static func == (a: Point, b: Point) -> Bool {
            a.timestamp == b.timestamp && a.value.bitPattern == b.value.bitPattern
        }
    }

    public enum CodecError: Error, Equatable, CustomStringConvertible {
        case outOfOrder(previous: Int64, next: Int64)
        case tooMany(Int)
        case truncated
        public var description: String {
            switch self {
            case let .outOfOrder(previous, next): "sample at \(next) is not after \(previous): a chunk's timestamps must increase"
            case .tooMany(let count): "\(count) samples do not fit one chunk (at most \(Gorilla.maxSamples))"
            case .truncated: "the chunk is truncated or corrupt"
            }
        }
    }

    public static func encode(_ samples: [Point]) throws(CodecError) -> [UInt8] {
        guard samples.count <= maxSamples else { throw .tooMany(samples.count) }
        var writer = BitWriter()
        writer.write(UInt64(samples.count), bits: 16)
        let decimals = decimalPlaces(samples)
        writer.write(UInt64(decimals.map { $0 + 1 } ?? 0), bits: 3)
        guard let first = samples.first else { return writer.bytes }
        writer.write(UInt64(bitPattern: first.timestamp), bits: 64)
        let scale = decimals.map { powersOfTen[$0] } ?? 1
        var previousScaled = decimals == nil ? 0 : Int64((first.value * scale).rounded())
        writer.write(decimals == nil ? first.value.bitPattern : UInt64(bitPattern: previousScaled), bits: 64)
        var previousTime = first.timestamp, previousDelta: Int64 = 0
        var previousValue = first.value.bitPattern
        var leading = 65, trailing = 0 // no window yet
        for sample in samples.dropFirst() {
            guard sample.timestamp > previousTime else { throw .outOfOrder(previous: previousTime, next: sample.timestamp) }
            let delta = sample.timestamp &- previousTime
            let dod = delta &- previousDelta
            writer.writeBucketed(dod, widths: timestampWidths)
            previousDelta = delta
            previousTime = sample.timestamp

            if decimals != nil {
                let scaled = Int64((sample.value * scale).rounded())
                let change = scaled &- previousScaled
                writer.writeBucketed(change, widths: decimalWidths)
                previousScaled = scaled
                continue
            }
            let bits = sample.value.bitPattern
            let xor = bits ^ previousValue
            if xor == 0 {
                writer.write(0, bits: 1)
            } else {
                let lead = min(xor.leadingZeroBitCount, 31), trail = xor.trailingZeroBitCount
                if leading <= lead, trailing <= trail {
                    writer.write(0b10, bits: 2)
                    writer.write(xor >> UInt64(trailing), bits: 64 - leading - trailing)
                } else {
                    leading = lead
                    trailing = trail
                    let length = 64 - lead - trail
                    writer.write(0b11, bits: 2)
                    writer.write(UInt64(lead), bits: 5)
                    writer.write(UInt64(length - 1), bits: 6)
                    writer.write(xor >> UInt64(trail), bits: length)
                }
            }
            previousValue = bits
        }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CodecError) -> [Point] {
        var reader = BitReader(bytes)
        let count = Int(try reader.read(16))
        let mode = Int(try reader.read(3))
        guard mode <= powersOfTen.count else { throw .truncated }
        guard count > 0 else { return [] }
        var samples: [Point] = []
        samples.reserveCapacity(count)
        var time = Int64(bitPattern: try reader.read(64))
        var value = try reader.read(64)
        let scale = mode > 0 ? powersOfTen[mode - 1] : 1
        var scaled = Int64(bitPattern: value)
        samples.append(Point(time, mode > 0 ? Double(scaled) / scale : Double(bitPattern: value)))
        var delta: Int64 = 0
        var leading = 0, trailing = 0
        for _ in 1..<count {
            delta = delta &+ (try reader.readBucketed(widths: timestampWidths))
            time = time &+ delta
            if mode > 0 {
                scaled = scaled &+ (try reader.readBucketed(widths: decimalWidths))
                samples.append(Point(time, Double(scaled) / scale))
                continue
            }
            if try reader.read(1) == 1 {
                if try reader.read(1) == 1 {
                    leading = Int(try reader.read(5))
                    let length = Int(try reader.read(6)) + 1
                    trailing = 64 - leading - length
                    guard trailing >= 0 else { throw .truncated }
                }
                let length = 64 - leading - trailing
                value ^= try reader.read(length) << UInt64(trailing)
            }
            samples.append(Point(time, Double(bitPattern: value)))
        }
        return samples
    }

    static let powersOfTen: [Double] = [1, 10, 100, 1_000, 10_000]
    /// Bucket widths after the prefixes '10', '110', '1110', … (all ones: 64 bits).
    static let timestampWidths = [14, 17, 20]
    static let decimalWidths = [4, 8, 16, 20, 32]

    /// The fewest decimal places (0...4) that represent every value exactly
    /// (bit for bit after `Double(scaled) / 10^k`), or nil (then XOR).
    static func decimalPlaces(_ samples: [Point]) -> Int? {
        guard !samples.isEmpty else { return nil }
        var places = 0
        for sample in samples {
            let value = sample.value
            guard value.isFinite, !(value == 0 && value.sign == .minus), abs(value) < 1e13 else { return nil }
            while true {
                let scaled = (value * powersOfTen[places]).rounded()
                if (scaled / powersOfTen[places]).bitPattern == value.bitPattern { break }
                places += 1
                if places == powersOfTen.count { return nil }
            }
        }
        return places
    }

    static func signExtend(_ value: UInt64, _ bits: Int) -> Int64 {
        let shift = 64 - bits
        return Int64(bitPattern: value << UInt64(shift)) >> Int64(shift)
    }
}

struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var used = 8 // bits used in the last byte

    /// Writes the low `bits` bits of `value`, most significant first.
    mutating func write(_ value: UInt64, bits: Int) {
        var remaining = bits
        while remaining > 0 {
            if used == 8 {
                bytes.append(0)
                used = 0
            }
            let take = min(8 - used, remaining)
            let chunk = UInt8(truncatingIfNeeded: (value >> UInt64(remaining - take)) & ((1 << UInt64(take)) - 1))
            bytes[bytes.count - 1] |= chunk << UInt8(8 - used - take)
            used += take
            remaining -= take
        }
    }
}

extension BitWriter {
    /// '0' for zero, else a unary prefix naming the first bucket of
    /// `widths` that holds the value (two's complement), or 64 bits.
    mutating func writeBucketed(_ value: Int64, widths: [Int]) {
        guard value != 0 else { return write(0, bits: 1) }
        for (index, width) in widths.enumerated() where (-(Int64(1) << (width - 1))..<(Int64(1) << (width - 1))).contains(value) {
            write((UInt64(1) << UInt64(index + 2)) - 2, bits: index + 2) // '10', '110', '1110'
            return write(UInt64(bitPattern: value), bits: width)
        }
        write((UInt64(1) << UInt64(widths.count + 1)) - 1, bits: widths.count + 1) // '1111'
        write(UInt64(bitPattern: value), bits: 64)
    }
}

extension BitReader {
    mutating func readBucketed(widths: [Int]) throws(Gorilla.CodecError) -> Int64 {
        guard try read(1) == 1 else { return 0 }
        for width in widths where try read(1) == 0 {
            return Gorilla.signExtend(try read(width), width)
        }
        return Int64(bitPattern: try read(64))
    }
}

struct BitReader {
    let bytes: [UInt8]
    var position = 0 // in bits

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read(_ bits: Int) throws(Gorilla.CodecError) -> UInt64 {
        guard bits > 0 else { return 0 }
        guard position + bits <= bytes.count * 8 else { throw .truncated }
        var value: UInt64 = 0
        var remaining = bits
        while remaining > 0 {
            let byte = bytes[position >> 3]
            let offset = position & 7
            let take = min(8 - offset, remaining)
            let chunk = (UInt64(byte) >> UInt64(8 - offset - take)) & ((1 << UInt64(take)) - 1)
            value = value << UInt64(take) | chunk
            position += take
            remaining -= take
        }
        return value
    }
}
