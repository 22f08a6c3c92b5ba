// StreamFrameDecoder (PilotWire/StreamFrame.swift): the framing of every
// TCP connection, fed bytes straight from the socket.
//
// Input: `limit u8 | split u8 | stream...`. The stream is fed in chunks
// whose sizes follow a small generator seeded by `split`, calling next()
// after every chunk until nil or an error, as the carrier does.
// Properties checked (a violation traps):
// - chunking changes nothing: the frames and the error equal those of
//   feeding the whole stream at once;
// - each frame re-encodes to exactly the bytes it was cut from;
// - between frames the decoder never holds more than one largest frame.
import FuzzSupport
import PilotWire

let limits = [0, 1, 64, 1024, 16_448, 1 << 20]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let maxPayload = limits[Int(input.byte()) % limits.count]
    var split = UInt32(input.byte()) | 1
    let stream = input.rest()

    let whole = decodeAll([stream[...]], maxPayload: maxPayload)
    var chunks: [ArraySlice<UInt8>] = []
    var offset = 0
    while offset < stream.count {
        split = split &* 1_103_515_245 &+ 12_345
        let length = Int((split >> 16) % 97) + 1
        let end = min(stream.count, offset + length)
        chunks.append(stream[offset..<end])
        offset = end
    }
    let pieces = decodeAll(chunks, maxPayload: maxPayload)
    guard whole.frames == pieces.frames, whole.error == pieces.error else {
        violated("chunked decoding differs: whole \(whole.frames.count) frames, \(String(describing: whole.error)); "
            + "chunked \(pieces.frames.count) frames, \(String(describing: pieces.error))")
    }
    var consumed = 0
    for frame in whole.frames {
        let encoded = frame.encoded
        guard consumed + encoded.count <= stream.count, Array(stream[consumed..<consumed + encoded.count]) == encoded else {
            violated("frame does not re-encode to the bytes it came from")
        }
        consumed += encoded.count
    }
    return 0
}

func decodeAll(_ chunks: [ArraySlice<UInt8>], maxPayload: Int) -> (frames: [StreamFrame], error: WireError?) {
    var decoder = StreamFrameDecoder(maxPayload: maxPayload)
    var frames: [StreamFrame] = []
    for chunk in chunks {
        decoder.feed(chunk)
        do {
            while let frame = try decoder.next() {
                guard frame.payload.count <= maxPayload else { violated("frame of \(frame.payload.count) bytes passed the limit \(maxPayload)") }
                frames.append(frame)
            }
        } catch {
            return (frames, error)
        }
        guard decoder.bufferedBytes < StreamFrame.headerBytes + maxPayload else {
            violated("decoder holds \(decoder.bufferedBytes) bytes between frames with a limit of \(maxPayload)")
        }
    }
    return (frames, nil)
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    let hello = StreamFrame(.handshakeInitiation, [1, 2] + [UInt8](repeating: 0x42, count: 32)).encoded
    let response = StreamFrame(.handshakeResponse, [UInt8](0..<98)).encoded
    let transport = StreamFrame(.transport, [0, 0, 0, 0, 0, 0, 0, 7] + [UInt8](repeating: 0xAB, count: 40)).encoded
    let refusal = StreamFrame(.error, Array("peer speaks wire protocol version 2".utf8)).encoded
    let empty = StreamFrame(.handshakeFinish, []).encoded
    return [
        ("one-frame", [4, 0] + hello),
        ("conversation", [4, 17] + hello + response + empty + transport + transport),
        ("refusal", [3, 5] + refusal),
        ("partial", [4, 200] + transport + Array(transport.prefix(9))),
        ("big-frame", [5, 33] + StreamFrame(.transport, [UInt8](repeating: 7, count: 3000)).encoded),
        ("too-large", [2, 1] + StreamFrame(.transport, [UInt8](repeating: 1, count: 65)).encoded),
    ]
}
