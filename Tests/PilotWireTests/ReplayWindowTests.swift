import PilotCore
import PilotWire
import Testing

@Suite struct ReplayWindowTests {
    @Test func acceptsEachCounterOnceInAnyOrderWithinTheWindow() throws {
        var window = ReplayWindow()
        let order: [UInt64] = [0, 2, 1, 10, 5, 4095, 3000]
        for counter in order {
            try window.check(counter)
            window.mark(counter)
        }
        for counter in order {
            #expect(throws: WireError.replayed(counter: counter)) { try window.check(counter) }
        }
        try window.check(3) // never seen, still inside the window
        window.mark(4096)
        #expect(throws: WireError.tooOld(counter: 0)) { try window.check(0) } // slid out
        #expect(throws: WireError.replayed(counter: 1)) { try window.check(1) }
    }

    @Test func refusesCountersOlderThanTheWindow() throws {
        var window = ReplayWindow()
        window.mark(10_000)
        #expect(throws: WireError.tooOld(counter: 10_000 - 4096)) { try window.check(10_000 - 4096) }
        try window.check(10_000 - 4095)
        #expect(ReplayWindow.size >= 2048)
    }

    @Test func slotsReusedAfterTheWindowSlidesAreClear() throws {
        var window = ReplayWindow()
        window.mark(5)
        window.mark(5 + 4096 * 3 + 1) // a big jump resets everything
        try window.check(5 + 4096 * 3) // shares slot with nothing seen
        window.mark(20_000)
        window.mark(20_001)
        // 20_001 - 4096 + ... slots between were cleared as the window moved one step.
        try window.check(20_001 - 4095)
    }

    @Test(arguments: [UInt64(64), 4096])
    func matchesAReferenceModelOnRandomTraffic(size: UInt64) throws {
        var window = ReplayWindow(size: size)
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        var generator = SplitMix64(state: size)
        var refusals = (replayed: 0, tooOld: 0)
        for _ in 0..<20_000 {
            let jump = UInt64.random(in: 0...(size * 3 / 2), using: &generator)
            let counter = Bool.random(using: &generator) ? highest + UInt64.random(in: 0...50, using: &generator) : (highest > jump ? highest - jump : 0)
            let expectedAccept = !seen.contains(counter) && (counter > highest || highest - counter < size || seen.isEmpty)
            let expectedRefusal: WireError? =
                expectedAccept ? nil : highest - counter >= size ? .tooOld(counter: counter) : .replayed(counter: counter)
            var refusal: WireError?
            do { try window.check(counter) } catch { refusal = error }
            #expect(refusal == expectedRefusal, "counter \(counter) highest \(highest)")
            switch refusal {
            case nil:
                window.mark(counter)
                seen.insert(counter)
                highest = max(highest, counter)
            case .replayed?: refusals.replayed += 1
            default: refusals.tooOld += 1
            }
        }
        // The traffic exercised both refusals, and the window slid far.
        #expect(refusals.replayed > 100 && refusals.tooOld > 100)
        #expect(highest > size * 10)
    }
}

@Suite struct StreamFrameTests {
    @Test func decodesFramesSplitAnywhereInTheStream() throws {
        let frames = [StreamFrame(.handshakeInitiation, [1, 2, 3]), StreamFrame(.transport, []), StreamFrame(.transport, Array(repeating: 9, count: 300))]
        let stream = frames.flatMap(\.encoded)
        for chunk in [1, 2, 5, 7, 64, stream.count] {
            var decoder = StreamFrameDecoder(maxPayload: 1024)
            var out: [StreamFrame] = []
            var index = 0
            while index < stream.count {
                decoder.feed(stream[index..<min(index + chunk, stream.count)])
                index += chunk
                while let frame = try decoder.next() { out.append(frame) }
            }
            #expect(out == frames)
            #expect(decoder.bufferedBytes == 0)
        }
    }

    @Test func refusesOversizedFramesFromTheHeaderAlone() {
        var decoder = StreamFrameDecoder(maxPayload: 1024)
        decoder.feed([1, 4, 0, 0x10, 0, 0]) // claims 1 MiB
        #expect(throws: WireError.frameTooLarge(length: 1 << 20, limit: 1024)) { try decoder.next() }
    }

    @Test func refusesOtherVersionsAndUnknownKinds() {
        var decoder = StreamFrameDecoder(maxPayload: 1024)
        decoder.feed([2])
        #expect(throws: WireError.unsupportedVersion(got: 2, supported: 1)) { try decoder.next() }
        var other = StreamFrameDecoder(maxPayload: 1024)
        other.feed([1, 99, 0, 0, 0, 0])
        #expect(throws: WireError.unknownFrameKind(99)) { try other.next() }
        #expect(WireError.unsupportedVersion(got: 2, supported: 1).description.contains("upgrade the older side"))
    }

    @Test func waitsForTruncatedFrames() throws {
        var decoder = StreamFrameDecoder(maxPayload: 1024)
        decoder.feed([1, 4, 0, 0, 0, 10, 1, 2])
        #expect(try decoder.next() == nil)
    }

    /// Random streams, some whole frames then random bytes, fed in random
    /// chunks: the decoder hands out exactly the frames the bytes hold, in
    /// order, then either keeps an incomplete frame buffered and waits, or
    /// refuses it for what its header says.
    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SplitMix64(state: 12)
        func randomBytes(_ count: ClosedRange<Int>) -> [UInt8] {
            (0..<Int.random(in: count, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        var outcomes = (framesFromTheTail: 0, waiting: 0, refused: [String: Int]())
        for _ in 0..<2000 {
            let leading = (0..<Int.random(in: 0...3, using: &generator)).map { _ in
                StreamFrame(StreamFrame.Kind(rawValue: UInt8.random(in: 1...5, using: &generator))!, randomBytes(0...40))
            }
            var tail = randomBytes(0...64)
            if Bool.random(using: &generator), !tail.isEmpty { tail[0] = StreamFrame.version }
            if Bool.random(using: &generator), tail.count >= 6 {
                // A plausible header: a known kind, a length either side of the limit.
                tail[1] = UInt8.random(in: 1...5, using: &generator)
                let length = Bool.random(using: &generator) ? Int.random(in: 0...32, using: &generator) : Int.random(in: 250...262, using: &generator)
                tail[2...5] = [0, 0, UInt8(length >> 8), UInt8(length & 0xFF)]
            }
            let stream = leading.flatMap(\.encoded) + tail
            var decoder = StreamFrameDecoder(maxPayload: 256)
            var decoded: [StreamFrame] = []
            var refusal: WireError?
            var fed = 0
            feeding: repeat {
                let chunk = min(stream.count - fed, Int.random(in: 1...16, using: &generator))
                decoder.feed(stream[fed..<fed + chunk])
                fed += chunk
                do {
                    while let frame = try decoder.next() { decoded.append(frame) }
                } catch {
                    refusal = error
                    break feeding
                }
            } while fed < stream.count

            // The whole frames come out first, in order, and nothing that is not in the bytes.
            let consumed = decoded.reduce(0) { $0 + $1.encoded.count }
            #expect(Array(decoded.prefix(leading.count)) == leading)
            #expect(decoded.flatMap(\.encoded) == Array(stream.prefix(consumed)))
            if decoded.count > leading.count { outcomes.framesFromTheTail += 1 }
            let rest = Array(stream[min(consumed, stream.count)...])
            let kind = rest.count >= 2 ? StreamFrame.Kind(rawValue: rest[1]) : nil
            let length = rest.count >= 6 ? rest[2..<6].reduce(0) { $0 << 8 | Int($1) } : nil
            if let refusal {
                // Refused at the first bad header, for what it says.
                let expected: WireError? =
                    rest.first.map { $0 != StreamFrame.version } == true ? .unsupportedVersion(got: rest[0], supported: StreamFrame.version)
                    : rest.count >= 6 && kind == nil ? .unknownFrameKind(rest[1])
                    : length.map { $0 > 256 } == true ? .frameTooLarge(length: length!, limit: 256)
                    : nil
                #expect(refusal == expected, "\(stream)")
                let name = switch refusal {
                case .unsupportedVersion: "version"
                case .unknownFrameKind: "kind"
                case .frameTooLarge: "length"
                default: "other"
                }
                outcomes.refused[name, default: 0] += 1
            } else {
                // Waiting: what is left is one incomplete frame, all of it kept.
                #expect(fed == stream.count)
                #expect(decoder.bufferedBytes == rest.count)
                if let first = rest.first {
                    #expect(first == StreamFrame.version)
                    if let length { #expect(kind != nil && length <= 256 && rest.count < StreamFrame.headerBytes + length) }
                    outcomes.waiting += 1
                }
            }
        }
        // Every outcome occurred, many times.
        #expect(outcomes.framesFromTheTail > 50 && outcomes.waiting > 50)
        #expect(outcomes.refused.count == 3 && outcomes.refused.values.allSatisfy { $0 > 50 }, "\(outcomes.refused)")
    }
}
