import PilotCore
import PilotStore
import Testing

@Suite struct GorillaTests {
    typealias S = Gorilla.Point

    @Test func edgeValuesRoundTripBitForBit() throws {
        let values: [Double] = [0, -0.0, .nan, -.nan, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                .leastNonzeroMagnitude, .leastNormalMagnitude, 1e-300, 42.1, 42.1, 42.1, 1, -1, 3.141592653589793, 0.1 + 0.2]
        let samples = values.enumerated().map { S(1_764_100_000_000 + Int64($0.offset) * 30_000, $0.element) }
        let decoded = try Gorilla.decode(Gorilla.encode(samples))
        #expect(decoded == samples)
        #expect(decoded[1].value.sign == .minus && decoded[1].value == 0) // -0.0 stays -0.0
        #expect(decoded[2].value.isNaN)
    }

    @Test func timestampsOfEveryShapeRoundTrip() throws {
        let times: [Int64] = [Int64.min / 4, -1, 0, 1, 2, 1_000, 30_000, 60_001, 90_000, 9_000_000, 9_000_001, 50_000_000_000, Int64.max / 4]
        let samples = times.map { S($0, 1) }
        #expect(try Gorilla.decode(Gorilla.encode(samples)) == samples)
        #expect(try Gorilla.decode(Gorilla.encode([])) == [])
        #expect(try Gorilla.decode(Gorilla.encode([S(5, 7)])) == [S(5, 7)])
    }

    @Test func equalOrOlderTimestampsAreRefused() {
        #expect(throws: Gorilla.CodecError.outOfOrder(previous: 10, next: 10)) { try Gorilla.encode([S(10, 1), S(10, 2)]) }
        #expect(throws: Gorilla.CodecError.outOfOrder(previous: 10, next: 5)) { try Gorilla.encode([S(10, 1), S(5, 2)]) }
    }

    @Test func decimalValuesUseTheDecimalModeAndStayExact() throws {
        let values: [Double] = [0.52, 0.5, 42.1, 97, 1_764_100_000, 0.0001, -3.25, 12_345.6789]
        let samples = values.enumerated().map { S(Int64($0.offset) * 1000, $0.element) }
        let bytes = try Gorilla.encode(samples)
        #expect(try Gorilla.decode(bytes) == samples)
        #expect((bytes[2] >> 5) == 5) // mode 5: four decimal places
        // One value that is not a short decimal sends the whole chunk to XOR, still exact.
        let mixed = samples + [S(100_000, 1.0 / 3.0)]
        let xor = try Gorilla.encode(mixed)
        #expect(xor[2] >> 5 == 0)
        #expect(try Gorilla.decode(xor) == mixed)
    }

    @Test func truncatedChunksAreAnErrorNotACrash() throws {
        let bytes = try Gorilla.encode((0..<100).map { S(Int64($0) * 1000, Double($0) * 1.5) })
        for length in [0, 1, 2, 5, 17, bytes.count / 2, bytes.count - 1] {
            #expect(throws: Gorilla.CodecError.truncated) { try Gorilla.decode(Array(bytes.prefix(length))) }
        }
    }

    @Test func randomSeriesRoundTrip() throws {
        var random = SplitMix64(state: 7)
        for round in 0..<200 {
            var time = Int64(random.next() % 2_000_000_000_000)
            var value = Double(random.next() % 1000) / 10
            var samples: [S] = []
            for _ in 0..<Int(random.next() % 500 + 1) {
                switch random.next() % 4 {
                case 0: time += 30_000
                case 1: time += Int64(random.next() % 5_000 + 1)
                case 2: time += Int64(random.next() % 10_000_000 + 1)
                default: time += Int64(random.next() % 100_000_000_000 + 1)
                }
                switch random.next() % 5 {
                case 0: break // the same value
                case 1: value = Double(bitPattern: random.next()) // any bits, NaNs included
                case 2: value += 0.1
                case 3: value = (value * 10).rounded() / 10 + 1
                default: value = -value
                }
                samples.append(S(time, value))
            }
            #expect(try Gorilla.decode(Gorilla.encode(samples)) == samples, "round \(round)")
        }
    }

    @Test func aRegularSeriesCompressesWell() throws {
        var value = 42.0
        var random = SplitMix64(state: 1)
        let samples = (0..<120).map { index -> S in
            value = max(0, min(100, value + Double(Int(random.next() % 21) - 10) / 10)) // a random walk with one decimal
            return S(1_764_100_000_000 + Int64(index) * 30_000, (value * 10).rounded() / 10)
        }
        let bytes = try Gorilla.encode(samples)
        // A random walk in tenths every 30 s: decimal mode, a few bits a sample (16 bytes raw).
        // Measured: 1.38 bytes a sample with 7-bit deltas, under 1.25 with the 4-bit bucket; XOR alone took 6.75.
        #expect(Double(bytes.count) / Double(samples.count) < 1.25)
    }
}
