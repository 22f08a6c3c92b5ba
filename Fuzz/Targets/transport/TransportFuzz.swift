// TransportReceiver.open (PilotWire/Transport.swift) and the ReplayWindow
// behind it (PilotWire/ReplayWindow.swift): every frame after the
// handshake.
//
// The session keys come from one real handshake between fixed keys, made
// once per algorithm. Input: `flags u8 | ...`:
//   bit 0: AES-256-GCM instead of ChaCha20-Poly1305
//   bit 1: the stream window (64) instead of the datagram one (4096)
//   bit 2: replay-window model mode (below) instead of frames
// Frames mode: each chunk is `kind u8 | rest`. Kind 0: open(rest) as is;
// kind 1: a genuine frame, the one sealed with counter rest[0]*rest[1]
// (0...65025; rest[2...] replaces the payload's start, making a forgery);
// kind 2: open(rest) with a 6-byte header as additional data. Checked: a
// genuine frame opens to what was sealed unless it is a replay or too old;
// a frame that opens once never opens again; nothing else ever opens.
// Model mode: the window alone, fed counters near its edge, against a
// plain set of counters (accepted iff newer than the highest, or within
// the window and not seen).
import FuzzSupport
import PilotCrypto
import PilotWire

let algorithms: [AEADAlgorithm] = [.chacha20poly1305, .aes256gcm]

/// (sender, receiver with the datagram window, receiver with the stream window), per algorithm.
let sessions: [(sender: TransportSender, datagram: TransportReceiver, stream: TransportReceiver)?] = algorithms.map { algorithm in
    guard algorithm != .aes256gcm || AEADAlgorithm.hardwareAESAvailable else { return nil }
    var initiator = try! Handshake.initiator(identity: FuzzKeys.signing(0x11), responder: nil, preference: algorithm,
                                             ephemeral: FuzzKeys.ephemeral(0x33))
    var responder = Handshake.responder(identity: FuzzKeys.signing(0x22), preference: algorithm, ephemeral: FuzzKeys.ephemeral(0x44))
    _ = try! responder.readMessage(initiator.writeMessage())
    _ = try! initiator.readMessage(responder.writeMessage())
    _ = try! responder.readMessage(initiator.writeMessage())
    let sending = try! initiator.sessionKeys()
    return (sending.sender, try! responder.sessionKeys().receiver, try! responder.sessionKeys(replayWindow: 64).receiver)
}

/// Genuine frames for counters 0...maxCounter, sealed lazily: payload = counter bytes.
final class GenuineFrames: @unchecked Sendable {
    static let maxCounter = 255 * 255
    var sender: TransportSender
    var frames: [[UInt8]] = []
    init(_ sender: TransportSender) { self.sender = sender }
    func frame(_ counter: Int) -> [UInt8] {
        while frames.count <= counter { frames.append(try! sender.seal(payload(frames.count))) }
        return frames[counter]
    }
    func payload(_ counter: Int) -> [UInt8] { [UInt8(counter >> 8), UInt8(counter & 0xFF), 0x50, 0x49, 0x4C, 0x4F, 0x54] }
}
// libFuzzer runs inputs on one thread; this cache is only touched there.
let genuine: [GenuineFrames?] = sessions.map { $0.map { GenuineFrames($0.sender) } }

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    _ = genuine.count
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    if flags & 4 != 0 {
        model(&input, windowSize: [1, 64, 100, 4096][Int(flags & 3)])
        return 0
    }
    let index = Int(flags & 1)
    guard let session = sessions[index], let frames = genuine[index] else { return 0 } // no AES on this CPU
    var receiver = flags & 2 != 0 ? session.stream : session.datagram
    var opened: Set<[UInt8]> = []
    while let chunk = input.chunk() {
        let rest = Array(chunk.dropFirst())
        switch chunk.first ?? 0 {
        case 1:
            let counter = Int(rest.first ?? 0) * Int(rest.count > 1 ? rest[1] : 0)
            var frame = frames.frame(counter)
            let forged = rest.count > 2
            if forged {
                let patch = rest.dropFirst(2).prefix(frame.count - 8)
                frame.replaceSubrange(8..<(8 + patch.count), with: patch)
            }
            let before = receiver.window
            do {
                let plaintext = try receiver.open(frame)
                guard plaintext == frames.payload(counter) else { violated("a frame opened to other bytes than were sealed") }
                guard opened.insert(frame).inserted else { violated("frame \(counter) opened twice") }
            } catch .replayed, .tooOld {
                guard receiver.window == before else { violated("a refused frame moved the window") }
            } catch {
                // Altered bytes may not pass; genuine ones must.
                guard forged else { violated("genuine frame \(counter) refused: \(error)") }
                guard receiver.window == before else { violated("a forged frame moved the window") }
            }
        case 2:
            if (try? receiver.open(rest, header: [1, 4, 0, 0, 0, UInt8(truncatingIfNeeded: rest.count)])) != nil {
                violated("a frame opened with additional data it was not sealed with")
            }
        default:
            let before = receiver.window
            if let plaintext = try? receiver.open(rest) {
                // Only bytes equal to a genuine frame can open.
                let counter = Int(plaintext.count == 7 ? Int(plaintext[0]) << 8 | Int(plaintext[1]) : -1)
                guard counter >= 0, counter <= GenuineFrames.maxCounter, rest == frames.frame(counter) else {
                    violated("arbitrary bytes opened as a transport frame")
                }
                guard opened.insert(rest).inserted else { violated("frame \(counter) opened twice") }
            } else if receiver.window != before {
                violated("a refused frame moved the window")
            }
        }
    }
    return 0
}

/// The window against a set. Each step: `k u8`; k < 0x80 checks
/// highest - k, k < 0xF0 checks highest + (k - 0x80), else the next 8 bytes
/// are the counter. A counter that passes check() is marked, as open() does.
func model(_ input: inout FuzzInput, windowSize: UInt64) {
    var window = ReplayWindow(size: windowSize)
    var seen: Set<UInt64> = []
    var top: UInt64?
    while !input.isAtEnd {
        let k = input.byte()
        let highest = window.highest ?? 0
        let counter: UInt64 = switch k {
        case ..<0x80: highest &- UInt64(k)
        case ..<0xF0: highest &+ UInt64(k - 0x80)
        default: input.uint64()
        }
        let expected: Bool
        if let top, counter <= top {
            expected = top - counter < window.size && !seen.contains(counter)
        } else {
            expected = true
        }
        let accepted = (try? window.check(counter)) != nil
        guard accepted == expected else {
            violated("window of \(window.size) with highest \(String(describing: window.highest)): check(\(counter)) \(accepted ? "passed" : "refused")")
        }
        if accepted {
            window.mark(counter)
            seen.insert(counter)
            top = max(top ?? counter, counter)
            if seen.count > 2 * Int(window.size), let top { seen = seen.filter { top - $0 < window.size } }
        }
        guard window.highest == top else { violated("highest \(String(describing: window.highest)), but \(String(describing: top)) was accepted") }
    }
}

func seeds() -> [(name: String, bytes: [UInt8])] {
    var out: [(name: String, bytes: [UInt8])] = []
    for index in algorithms.indices {
        guard let frames = genuine[index] else { continue }
        let name = algorithms[index].rawValue
        let raw = (0..<3).map { [0] + frames.frame($0) }
        out += [
            ("\(name)-in-order", [UInt8(index)] + FuzzLayout.chunks(raw)),
            ("\(name)-reordered-replayed", [UInt8(index | 2)] + FuzzLayout.chunks([raw[2], raw[0], raw[1], raw[1]])),
            ("\(name)-genuine", [UInt8(index | 2)] + FuzzLayout.chunks([[1, 1, 1], [1, 10, 10], [1, 2, 3], [1, 1, 1], [1, 3, 3, 0xFF]])),
            ("\(name)-header", [UInt8(index)] + FuzzLayout.chunks([[2] + frames.frame(4)])),
        ]
    }
    out += [
        ("model-stream", [6, 0x85, 0x81, 1, 2, 0x8F, 0xC0, 64, 63, 0]),
        ("model-datagram", [7, 0xEF, 0xEF, 0x80, 0x81, 0x85, 10, 20, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x90]),
        ("model-one", [4, 0x81, 0x80, 0x82, 1, 2, 0x81]),
    ]
    return out
}
