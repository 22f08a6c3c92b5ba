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
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let jump = UInt64.random(in: 0...(size * 3 / 2), using: &generator)
            let counter = Bool.random(using: &generator) ? highest + UInt64.random(in: 0...50, using: &generator) : (highest > jump ? highest - jump : 0)
            let expectedAccept = !seen.contains(counter) && (counter > highest || highest - counter < size || seen.isEmpty)
            let accepted: Bool
            do { try window.check(counter); accepted = true } catch { accepted = false }
            #expect(accepted == expectedAccept, "counter \(counter) highest \(highest)")
            if accepted {
                window.mark(counter)
                seen.insert(counter)
                highest = max(highest, counter)
            }
        }
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

    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var decoder = StreamFrameDecoder(maxPayload: 256)
            var bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if Bool.random(using: &generator), !bytes.isEmpty { bytes[0] = 1 }
            decoder.feed(bytes)
            while true {
                do { guard try decoder.next() != nil else { break } } catch { break }
            }
        }
    }
}
