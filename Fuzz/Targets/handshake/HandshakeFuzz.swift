// Handshake (PilotWire/Handshake.swift) and SecureChannel
// (PilotWire/SecureChannel.swift): the first bytes any peer sends, before
// anything is authenticated.
//
// Input: `scenario u8 | preferences u8 | ...`; messages are
// length-prefixed chunks (see FuzzInput.chunk). Keys and ephemerals are
// fixed (FuzzKeys), so honest transcripts are reproducible and seed the
// corpus; the preferences byte picks AES-256-GCM or ChaCha20-Poly1305 for
// the initiator (bit 0) and the responder (bit 1).
//
//   0  responder: arbitrary first message, then (XX) an arbitrary finish
//   1  XX initiator waiting for the response: an arbitrary response
//   2  IK initiator waiting for the response: an arbitrary response
//   3  responder waiting for the XX finish (after an honest start)
//   4  SecureChannel responder: arbitrary frames
//   5  SecureChannel initiator (XX or IK): arbitrary frames
//   6  a lying initiator: a correct Noise peer written here whose encrypted
//      fields (static key, payloads) and clear header are chosen by the input
//   7  a lying responder: the same against a real initiator
//
// Scenarios 6 and 7 reach what lies behind the AEAD, which random bytes
// never pass: identity validation, the algorithm choice, payloads.
// Errors are expected; a crash, trap or hang is a finding. Property
// checked: whenever both sides complete, they agree on the transcript hash,
// the algorithm and each other's identity.
import FuzzSupport
import PilotCrypto
import PilotWire

let initiatorIdentity = FuzzKeys.signing(0x11)
let responderIdentity = FuzzKeys.signing(0x22)
let initiatorEphemeral = FuzzKeys.ephemeral(0x33)
let responderEphemeral = FuzzKeys.ephemeral(0x44)

func preference(_ aes: Bool) -> AEADAlgorithm { aes ? .aes256gcm : .chacha20poly1305 }

func honestInitiator(ik: Bool, aes: Bool) -> Handshake {
    try! Handshake.initiator(identity: initiatorIdentity, responder: ik ? responderIdentity.publicKey : nil,
                             preference: preference(aes), ephemeral: initiatorEphemeral)
}

func honestResponder(aes: Bool) -> Handshake {
    Handshake.responder(identity: responderIdentity, preference: preference(aes), ephemeral: responderEphemeral)
}

/// An honest run, recorded: the initiator after its first message, that
/// message, the responder after reading it and writing its answer, the
/// answer, and (XX) the finish an honest initiator sends back.
struct Transcript: Sendable {
    var initiator: Handshake
    var initiation: [UInt8]
    var responder: Handshake
    var response: [UInt8]
    var finish: [UInt8]?
}

func record(ik: Bool, initiatorAES: Bool, responderAES: Bool, payload: [UInt8] = []) -> Transcript {
    var initiator = honestInitiator(ik: ik, aes: initiatorAES)
    let initiation = try! initiator.writeMessage(payload: ik ? payload : [])
    var responder = honestResponder(aes: responderAES)
    _ = try! responder.readMessage(initiation)
    let response = try! responder.writeMessage(payload: payload)
    var finish: [UInt8]?
    if !ik {
        var copy = initiator
        _ = try! copy.readMessage(response)
        finish = try! copy.writeMessage(payload: payload)
    }
    return Transcript(initiator: initiator, initiation: initiation, responder: responder, response: response, finish: finish)
}

/// Indexed by the preferences byte (bit 0 initiator AES, bit 1 responder AES).
let xxTranscripts = (0..<4).map { record(ik: false, initiatorAES: $0 & 1 != 0, responderAES: $0 & 2 != 0) }
let ikTranscripts = (0..<4).map { record(ik: true, initiatorAES: $0 & 1 != 0, responderAES: $0 & 2 != 0) }

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> Int32 {
    FuzzSeeds.writeIfAsked(seeds)
    _ = (xxTranscripts.count, ikTranscripts.count)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let scenario = input.byte() % 8
    let preferences = Int(input.byte() & 3)
    let initiatorAES = preferences & 1 != 0, responderAES = preferences & 2 != 0
    switch scenario {
    case 0:
        var responder = honestResponder(aes: responderAES)
        guard (try? responder.readMessage(input.chunk() ?? [])) != nil else { return 0 }
        _ = try? responder.writeMessage()
        if !responder.isComplete { _ = try? responder.readMessage(input.chunk() ?? []) }
        if responder.isComplete { _ = try? responder.sessionKeys() }
    case 1, 2:
        var initiator = (scenario == 1 ? xxTranscripts : ikTranscripts)[preferences].initiator
        guard (try? initiator.readMessage(input.chunk() ?? [])) != nil else { return 0 }
        if initiator.wantsToWrite { _ = try? initiator.writeMessage(payload: input.chunk() ?? []) }
        if initiator.isComplete { _ = try? initiator.sessionKeys() }
    case 3:
        var responder = xxTranscripts[preferences].responder
        guard (try? responder.readMessage(input.chunk() ?? [])) != nil else { return 0 }
        _ = try? responder.sessionKeys()
    case 4:
        var channel = SecureChannel.responder(identity: responderIdentity, preference: preference(responderAES))
        feed(&channel, &input)
    case 5:
        let pinned = input.byte() & 1 == 1 ? responderIdentity.publicKey : nil
        guard let started = try? SecureChannel.initiator(
            identity: initiatorIdentity, responder: pinned, preference: preference(initiatorAES), firstPayload: input.chunk() ?? [])
        else { return 0 }
        var channel = started.0
        feed(&channel, &input)
    case 6:
        lyingInitiator(&input, responderAES: responderAES)
    default:
        lyingResponder(&input, initiatorAES: initiatorAES)
    }
    return 0
}

/// Each chunk is one frame: kind byte, then the payload.
func feed(_ channel: inout SecureChannel, _ input: inout FuzzInput) {
    while let chunk = input.chunk() {
        guard let kind = StreamFrame.Kind(rawValue: chunk.first ?? 0) else { continue }
        do {
            _ = try channel.receive(StreamFrame(kind, Array(chunk.dropFirst())))
        } catch {
            guard (try? channel.seal([1])) == nil else { violated("a failed channel still seals messages") }
            return
        }
    }
}

// MARK: A lying peer

/// Noise's symmetric state, written again from the protocol description
/// (docs/PROTOCOL.md), so the harness can encrypt what a liar chooses.
struct Noise {
    var h: [UInt8]
    var ck: [UInt8]
    var key: AEADKey?
    var nonce: UInt64 = 0

    init(ik: Bool, header: [UInt8]) {
        h = SHA256.hash(Array((ik ? "Pilot_IK_25519_ChaChaPoly_SHA256" : "Pilot_XX_25519_ChaChaPoly_SHA256").utf8))
        ck = h
        mixHash(Array("pilot-wire/1".utf8) + header)
        if ik { mixHash(responderIdentity.publicKey.bytes) }
    }

    mutating func mixHash(_ data: [UInt8]) { h = SHA256.hash(h + data) }

    mutating func mixDH(_ local: X25519PrivateKey, _ remote: [UInt8]) {
        guard let remote = try? X25519PublicKey(bytes: remote), let shared = try? local.sharedSecret(with: remote) else {
            mixKey([UInt8](repeating: 0, count: 32)) // a liar with a bad point: keys nobody shares
            return
        }
        mixKey(shared)
    }

    mutating func mixKey(_ material: [UInt8]) {
        let outputs = HKDF.derive(chainingKey: ck, inputKeyMaterial: material, outputs: 2)
        ck = outputs[0]
        key = try! AEADKey(.chacha20poly1305, bytes: outputs[1])
        nonce = 0
    }

    var nonceBytes: [UInt8] { [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: nonce >> (56 - 8 * $0)) } }

    mutating func encryptAndHash(_ plaintext: [UInt8]) -> [UInt8] {
        guard let key else {
            mixHash(plaintext)
            return plaintext // before any key: sent in clear (the peer must refuse a non-empty one)
        }
        let ciphertext = try! key.seal(plaintext, nonce: nonceBytes, additionalData: h)
        nonce += 1
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) -> [UInt8]? {
        guard let key else {
            mixHash(ciphertext)
            return ciphertext
        }
        guard let plaintext = try? key.open(ciphertext, nonce: nonceBytes, additionalData: h) else { return nil }
        nonce += 1
        mixHash(ciphertext)
        return plaintext
    }
}

/// `flags u8 | preference u8 | static chunk | payload chunk | finish static chunk | finish payload chunk`
/// flags: bit 0 IK, bit 1 raw ephemeral (next 32 bytes), bit 2 raw pattern byte (next byte).
@discardableResult
func lyingInitiator(_ input: inout FuzzInput, responderAES: Bool) -> Bool {
    let flags = input.byte()
    let ik = flags & 1 != 0
    let patternByte: UInt8 = flags & 4 != 0 ? input.byte() : (ik ? 2 : 1)
    let offered = input.byte()
    let ephemeralPublic = flags & 2 != 0 ? input.take(32) : initiatorEphemeral.publicKey.bytes
    let staticKey = input.chunk() ?? initiatorIdentity.publicKey.bytes
    let firstPayload = input.chunk() ?? []
    let responderStatic = try! responderIdentity.publicKey.keyAgreementKey().bytes
    let localStatic = initiatorIdentity.keyAgreementKey()

    var noise = Noise(ik: ik, header: [patternByte, offered])
    var message = [patternByte, offered] + ephemeralPublic
    noise.mixHash(ephemeralPublic)
    if ik {
        noise.mixDH(initiatorEphemeral, responderStatic)                         // es
        message += noise.encryptAndHash(staticKey)                               // s
        noise.mixDH(localStatic, responderStatic)                                // ss
    }
    message += noise.encryptAndHash(firstPayload)

    var responder = honestResponder(aes: responderAES)
    guard (try? responder.readMessage(message)) != nil else { return false }
    guard let response = try? responder.writeMessage(payload: [7]) else { return false }
    let responderEphemeralKey = Array(response.prefix(32))
    noise.mixHash(responderEphemeralKey)
    noise.mixDH(initiatorEphemeral, responderEphemeralKey)                       // ee
    if ik {
        noise.mixDH(localStatic, responderEphemeralKey)                          // se
    } else {
        guard noise.decryptAndHash(Array(response.dropFirst(32).prefix(48))) != nil else { return false }
        noise.mixDH(initiatorEphemeral, responderStatic)                         // es
    }
    guard noise.decryptAndHash(Array(response.dropFirst(ik ? 32 : 80))) != nil else { return false }
    if !ik {
        let finish = noise.encryptAndHash(input.chunk() ?? staticKey)            // s
        noise.mixDH(localStatic, responderEphemeralKey)                          // se
        guard (try? responder.readMessage(finish + noise.encryptAndHash(input.chunk() ?? []))) != nil else { return false }
    }
    guard responder.isComplete, let keys = try? responder.sessionKeys() else { return false }
    // Only the liar's own key can finish: it holds no other private key.
    guard sameKeyAgreementKey(keys.remoteIdentity, initiatorIdentity.publicKey), keys.handshakeHash == noise.h else {
        violated("responder completed with \(keys.remoteIdentity), not the key the liar holds")
    }
    return true
}

/// `flags u8 | static chunk | plaintext chunk`; flags: bit 0 IK, bit 1 raw
/// ephemeral (next 32 bytes). The plaintext is what the second message
/// encrypts: algorithm choice, responder preference, payload.
@discardableResult
func lyingResponder(_ input: inout FuzzInput, initiatorAES: Bool) -> Bool {
    let flags = input.byte()
    let ik = flags & 1 != 0
    let ephemeralPublic = flags & 2 != 0 ? input.take(32) : responderEphemeral.publicKey.bytes
    let staticKey = input.chunk() ?? responderIdentity.publicKey.bytes
    let plaintext = input.chunk() ?? [2, 2]

    var initiator = honestInitiator(ik: ik, aes: initiatorAES)
    let initiation = try! initiator.writeMessage(payload: ik ? [1] : [])
    let initiatorEphemeralKey = Array(initiation[2..<34])
    let localStatic = responderIdentity.keyAgreementKey()
    var noise = Noise(ik: ik, header: Array(initiation.prefix(2)))
    noise.mixHash(initiatorEphemeralKey)
    var initiatorStatic: [UInt8] = []
    if ik {
        noise.mixDH(localStatic, initiatorEphemeralKey)                          // es
        guard let key = noise.decryptAndHash(Array(initiation[34..<82])),
              let identity = try? PublicKey(bytes: key), let x = try? identity.keyAgreementKey()
        else { violated("cannot read an honest IK initiation") }
        initiatorStatic = x.bytes
        noise.mixDH(localStatic, initiatorStatic)                                // ss
        guard noise.decryptAndHash(Array(initiation[82...])) == [1] else { violated("cannot read an honest IK payload") }
    } else {
        guard noise.decryptAndHash(Array(initiation[34...])) == [] else { violated("cannot read an honest XX initiation") }
    }

    var response = ephemeralPublic
    noise.mixHash(ephemeralPublic)
    noise.mixDH(responderEphemeral, initiatorEphemeralKey)                       // ee
    if ik {
        noise.mixDH(responderEphemeral, initiatorStatic)                         // se
    } else {
        response += noise.encryptAndHash(staticKey)                              // s
        noise.mixDH(localStatic, initiatorEphemeralKey)                          // es
    }
    response += noise.encryptAndHash(plaintext)
    guard (try? initiator.readMessage(response)) != nil else { return false }
    if initiator.wantsToWrite { _ = try? initiator.writeMessage(payload: [3]) }
    guard initiator.isComplete, let keys = try? initiator.sessionKeys() else { return false }
    guard sameKeyAgreementKey(keys.remoteIdentity, responderIdentity.publicKey) else {
        violated("initiator completed with \(keys.remoteIdentity), not the key the liar holds")
    }
    return true
}

/// The handshake proves possession of the X25519 form of an identity.
/// An Ed25519 key and its negation share that form (and the secret of one
/// gives the other's), so compare what was proven.
func sameKeyAgreementKey(_ a: PublicKey, _ b: PublicKey) -> Bool {
    (try? a.keyAgreementKey()) == (try? b.keyAgreementKey())
}

// MARK: Seeds

func seeds() -> [(name: String, bytes: [UInt8])] {
    var out: [(name: String, bytes: [UInt8])] = []
    for preferences in [0, 3] {
        let p = UInt8(preferences)
        let xx = xxTranscripts[preferences], ik = ikTranscripts[preferences]
        let withPayload = record(ik: true, initiatorAES: p & 1 != 0, responderAES: p & 2 != 0, payload: Array("register".utf8))
        out += [
            ("responder-xx-\(p)", [0, p] + FuzzLayout.chunks([xx.initiation, xx.finish!])),
            ("responder-ik-\(p)", [0, p] + FuzzLayout.chunks([withPayload.initiation])),
            ("initiator-xx-\(p)", [1, p] + FuzzLayout.chunks([xx.response, Array("hello".utf8)])),
            ("initiator-ik-\(p)", [2, p] + FuzzLayout.chunks([ik.response])),
            ("finish-\(p)", [3, p] + FuzzLayout.chunks([xx.finish!])),
            ("channel-responder-\(p)", [4, p] + FuzzLayout.chunks([[1] + xx.initiation, [3] + xx.finish!, [4] + [UInt8](repeating: 0, count: 24)])),
            ("channel-initiator-\(p)", [5, p, 1] + FuzzLayout.chunks([[], [2] + ik.response, [5] + Array("idle timeout".utf8)])),
        ]
    }
    let identity = initiatorIdentity.publicKey.bytes, registry = responderIdentity.publicKey.bytes
    out += [
        ("liar-initiator-xx", [6, 0, 0, 2] + FuzzLayout.chunks([identity, [], identity, Array("finish".utf8)])),
        ("liar-initiator-ik", [6, 3, 1, 1] + FuzzLayout.chunks([identity, Array("first".utf8)])),
        ("liar-initiator-bad-key", [6, 0, 1, 2] + FuzzLayout.chunks([[UInt8](repeating: 0xFF, count: 32), []])),
        ("liar-initiator-cleartext", [6, 0, 0, 2] + FuzzLayout.chunks([identity, Array("clear".utf8)])),
        ("liar-responder-xx", [7, 0, 0] + FuzzLayout.chunks([registry, [2, 2] + Array("welcome".utf8)])),
        ("liar-responder-ik", [7, 3, 1] + FuzzLayout.chunks([registry, [1, 1]])),
        ("liar-responder-downgrade", [7, 3, 0] + FuzzLayout.chunks([registry, [2, 1]])),
        ("liar-responder-low-order", [7, 0, 2] + [UInt8](repeating: 0, count: 32) + FuzzLayout.chunks([registry, [2, 2]])),
    ]
    // The liar must be a correct Noise peer when it tells the truth, or
    // scenarios 6 and 7 would test nothing: check it on its seeds.
    for (name, bytes) in out where name.hasPrefix("liar-") {
        var input = FuzzInput(bytes)
        let scenario = input.byte(), preferences = input.byte()
        let completed = scenario == 6 ? lyingInitiator(&input, responderAES: preferences & 2 != 0)
                                      : lyingResponder(&input, initiatorAES: preferences & 1 != 0)
        let honest = ["liar-initiator-xx", "liar-initiator-ik", "liar-responder-xx", "liar-responder-ik"].contains(name)
        precondition(completed == honest, "seed \(name): the handshake \(completed ? "completed" : "failed")")
    }
    return out
}
