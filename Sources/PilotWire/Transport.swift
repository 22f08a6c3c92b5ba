public import PilotCrypto

/// What a completed handshake yields: one key per direction.
public struct SessionKeys: Sendable {
    public var sender: TransportSender
    public var receiver: TransportReceiver
    public let remoteIdentity: PublicKey
    public let handshakeHash: [UInt8]
    public let algorithm: AEADAlgorithm
}

/// Seals transport frames: `counter u64 | ciphertext+tag`, the counter
/// being the AEAD nonce (never reused under one key).
public struct TransportSender: Sendable {
    /// Past this many frames a session should rekey (a new handshake).
    public static let rekeyAfterFrames: UInt64 = 1 << 30
    /// Past this many it refuses to send at all.
    public static let hardLimitFrames: UInt64 = 1 << 31

    private let key: AEADKey
    public private(set) var nextCounter: UInt64 = 0

    init(key: AEADKey) { self.key = key }

    public var needsRekey: Bool { nextCounter >= Self.rekeyAfterFrames }

    public mutating func seal(_ plaintext: [UInt8], header: [UInt8] = []) throws(WireError) -> [UInt8] {
        guard nextCounter < Self.hardLimitFrames else { throw .keyExhausted }
        let counterBytes = nextCounter.bigEndianBytes
        let sealed: [UInt8]
        do { sealed = try key.seal(plaintext, nonce: [0, 0, 0, 0] + counterBytes, additionalData: header) } catch {
            throw .malformed("\(error)")
        }
        nextCounter += 1
        return counterBytes + sealed
    }
}

/// Opens transport frames, refusing forgeries, replays and frames older
/// than the replay window.
public struct TransportReceiver: Sendable {
    private let key: AEADKey
    public private(set) var window: ReplayWindow

    init(key: AEADKey, windowSize: UInt64 = ReplayWindow.size) {
        self.key = key
        window = ReplayWindow(size: windowSize)
    }

    public mutating func open(_ frame: [UInt8], header: [UInt8] = []) throws(WireError) -> [UInt8] {
        var reader = WireReader(frame)
        let counter = try reader.readUInt64("transport frame counter")
        guard reader.remaining >= AEADAlgorithm.tagByteCount else { throw .truncated(what: "transport frame") }
        try window.check(counter)
        let plaintext: [UInt8]
        do { plaintext = try key.open(reader.readRest(), nonce: [0, 0, 0, 0] + counter.bigEndianBytes, additionalData: header) } catch {
            throw .authenticationFailed
        }
        window.mark(counter)
        return plaintext
    }
}
