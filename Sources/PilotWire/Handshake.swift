public import PilotCrypto

/// A Noise-style handshake between two Ed25519 identities (their X25519
/// forms do the Diffie-Hellman), as a pure state machine: feed it the
/// peer's messages, take the messages it writes, and once `isComplete`
/// take the session keys. No sockets, no clocks.
///
/// - XX (`Noise_XX`): the initiator does not know the responder's key yet
///   (first contact with a registry, which the caller then pins).
///   Three messages: `-> e`, `<- e, ee, s, es`, `-> s, se`.
/// - IK (`Noise_IK`): the initiator knows the responder's key (pinned, or
///   from a lookup). Two messages: `-> e, es, s, ss`, `<- e, ee, se`.
///
/// The first message starts with the pattern and the initiator's AEAD
/// preference in clear (they are hashed into the transcript); the
/// responder's choice travels encrypted in the second and the initiator
/// checks it, so neither side can be talked down to a weaker choice.
public struct Handshake: Sendable {
    public enum Pattern: UInt8, Sendable {
        case xx = 1
        case ik = 2

        var protocolName: String {
            switch self {
            case .xx: "Pilot_XX_25519_ChaChaPoly_SHA256"
            case .ik: "Pilot_IK_25519_ChaChaPoly_SHA256"
            }
        }
    }

    public enum Role: Sendable { case initiator, responder }

    enum Step: Sendable, Equatable {
        case writeInitiation, readResponse, writeFinish
        case readInitiation, writeResponse, readFinish
        case complete
    }

    static let prologue = Array("pilot-wire/1".utf8)
    static let keyBytes = PublicKey.byteCount
    static let encryptedKeyBytes = PublicKey.byteCount + AEADAlgorithm.tagByteCount

    public let role: Role
    public private(set) var pattern: Pattern?
    private var step: Step
    private var symmetric = SymmetricState(protocolName: "")
    private let identity: SigningKey
    private let localStatic: X25519PrivateKey
    private let ephemeral: X25519PrivateKey
    private let localPreference: AEADAlgorithm
    private var remoteEphemeral: X25519PublicKey?
    private var remoteStatic: X25519PublicKey?
    /// The peer's identity: known from the start in IK (initiator), learnt
    /// from the handshake otherwise. Check it against pins before going on.
    public private(set) var remoteIdentity: PublicKey?
    public private(set) var algorithm: AEADAlgorithm?

    public static func initiator(
        identity: SigningKey, responder: PublicKey? = nil, preference: AEADAlgorithm,
        ephemeral: X25519PrivateKey = .generate()
    ) throws(WireError) -> Handshake {
        var handshake = Handshake(role: .initiator, step: .writeInitiation, identity: identity, preference: preference, ephemeral: ephemeral)
        handshake.pattern = responder == nil ? .xx : .ik
        if let responder {
            handshake.remoteIdentity = responder
            do { handshake.remoteStatic = try responder.keyAgreementKey() } catch { throw .malformed("responder key is not a valid Ed25519 key") }
        }
        return handshake
    }

    public static func responder(
        identity: SigningKey, preference: AEADAlgorithm, ephemeral: X25519PrivateKey = .generate()
    ) -> Handshake {
        Handshake(role: .responder, step: .readInitiation, identity: identity, preference: preference, ephemeral: ephemeral)
    }

    private init(role: Role, step: Step, identity: SigningKey, preference: AEADAlgorithm, ephemeral: X25519PrivateKey) {
        self.role = role
        self.step = step
        self.identity = identity
        localStatic = identity.keyAgreementKey()
        localPreference = preference
        self.ephemeral = ephemeral
    }

    public var isComplete: Bool { step == .complete }

    /// Whether it is this side's turn to write.
    public var wantsToWrite: Bool { [.writeInitiation, .writeResponse, .writeFinish].contains(step) }

    /// The frame kind the next message travels in.
    public var nextKind: StreamFrame.Kind {
        switch step {
        case .writeInitiation, .readInitiation: .handshakeInitiation
        case .writeResponse, .readResponse: .handshakeResponse
        case .writeFinish, .readFinish, .complete: .handshakeFinish
        }
    }

    // MARK: Writing

    public mutating func writeMessage(payload: [UInt8] = []) throws(WireError) -> [UInt8] {
        switch step {
        case .writeInitiation:
            let pattern = pattern ?? .xx
            let header = [pattern.rawValue, Self.preferenceByte(localPreference)]
            start(pattern: pattern, header: header)
            var out = header + ephemeral.publicKey.bytes
            symmetric.mixHash(ephemeral.publicKey.bytes)
            if pattern == .ik {
                try mixDH(ephemeral, remoteStatic!)                          // es
                out += symmetric.encryptAndHash(identity.publicKey.bytes)     // s
                try mixDH(localStatic, remoteStatic!)                         // ss
                out += symmetric.encryptAndHash(payload)
            } else {
                guard payload.isEmpty else { throw .malformed("the first XX message cannot carry a payload (it would be unencrypted)") }
                out += symmetric.encryptAndHash(payload)
            }
            step = .readResponse
            return out

        case .writeResponse:
            guard let remoteEphemeral, let peerPreference = algorithmOffered else { throw .malformed("handshake state lost") }
            var out = ephemeral.publicKey.bytes
            symmetric.mixHash(ephemeral.publicKey.bytes)
            try mixDH(ephemeral, remoteEphemeral)                             // ee
            if pattern == .xx {
                out += symmetric.encryptAndHash(identity.publicKey.bytes)     // s
                try mixDH(localStatic, remoteEphemeral)                       // es
            } else {
                try mixDH(ephemeral, remoteStatic!)                           // se
            }
            let chosen = AEADAlgorithm.negotiate(local: localPreference, peer: peerPreference)
            algorithm = chosen
            out += symmetric.encryptAndHash([Self.preferenceByte(chosen), Self.preferenceByte(localPreference)] + payload)
            step = pattern == .xx ? .readFinish : .complete
            return out

        case .writeFinish:
            guard let remoteEphemeral else { throw .malformed("handshake state lost") }
            var out = symmetric.encryptAndHash(identity.publicKey.bytes)      // s
            try mixDH(localStatic, remoteEphemeral)                           // se
            out += symmetric.encryptAndHash(payload)
            step = .complete
            return out

        case .readInitiation, .readResponse, .readFinish, .complete:
            throw .malformed("not this side's turn to send a handshake message")
        }
    }

    // MARK: Reading

    private var algorithmOffered: AEADAlgorithm?

    public mutating func readMessage(_ message: [UInt8]) throws(WireError) -> [UInt8] {
        var reader = WireReader(message)
        switch step {
        case .readInitiation:
            guard let pattern = Pattern(rawValue: try reader.readByte("handshake header")) else {
                throw .malformed("unknown handshake pattern \(message.first ?? 0)")
            }
            let offered = try Self.algorithm(from: try reader.readByte("handshake header"))
            start(pattern: pattern, header: [pattern.rawValue, Self.preferenceByte(offered)])
            self.pattern = pattern
            algorithmOffered = offered
            let re = try readKey(&reader)
            remoteEphemeral = re
            symmetric.mixHash(re.bytes)
            let payload: [UInt8]
            if pattern == .ik {
                try mixDH(localStatic, re)                                    // es
                try learnRemoteIdentity(symmetric.decryptAndHash(try reader.read(Self.encryptedKeyBytes, "initiator key")))
                try mixDH(localStatic, remoteStatic!)                         // ss
                payload = try symmetric.decryptAndHash(reader.readRest())
            } else {
                payload = try symmetric.decryptAndHash(reader.readRest())    // must be empty: no key yet
            }
            step = .writeResponse
            return payload

        case .readResponse:
            let re = try readKey(&reader)
            remoteEphemeral = re
            symmetric.mixHash(re.bytes)
            try mixDH(ephemeral, re)                                          // ee
            if pattern == .xx {
                try learnRemoteIdentity(symmetric.decryptAndHash(try reader.read(Self.encryptedKeyBytes, "responder key")))
                try mixDH(ephemeral, remoteStatic!)                           // es
            } else {
                try mixDH(localStatic, re)                                    // se
            }
            var plaintext = WireReader(try symmetric.decryptAndHash(reader.readRest()))
            let chosen = try Self.algorithm(from: plaintext.readByte("algorithm choice"))
            let responderPreference = try Self.algorithm(from: plaintext.readByte("algorithm choice"))
            guard chosen == AEADAlgorithm.negotiate(local: localPreference, peer: responderPreference) else {
                throw .malformed("the responder chose \(chosen), which does not follow from both preferences")
            }
            algorithm = chosen
            step = pattern == .xx ? .writeFinish : .complete
            return plaintext.readRest()

        case .readFinish:
            guard let remoteEphemeral else { throw .malformed("handshake state lost") }
            _ = remoteEphemeral
            try learnRemoteIdentity(symmetric.decryptAndHash(try reader.read(Self.encryptedKeyBytes, "initiator key")))
            try mixDH(ephemeral, remoteStatic!)                               // se
            let payload = try symmetric.decryptAndHash(reader.readRest())
            step = .complete
            return payload

        case .writeInitiation, .writeResponse, .writeFinish, .complete:
            throw .malformed("unexpected handshake message")
        }
    }

    // MARK: Result

    /// The transcript hash: equal on both sides, unique to this session.
    /// Signing it binds an application message to this very channel.
    public var handshakeHash: [UInt8] { symmetric.h }

    /// `replayWindow`: how many counters below the highest the receiver
    /// remembers (wide for datagrams, small for an in-order stream).
    public func sessionKeys(replayWindow: UInt64 = ReplayWindow.size) throws(WireError) -> SessionKeys {
        guard step == .complete, let algorithm, let remoteIdentity else { throw .malformed("handshake is not complete") }
        let (forward, backward) = symmetric.split()
        let (send, receive) = role == .initiator ? (forward, backward) : (backward, forward)
        do {
            return SessionKeys(
                sender: TransportSender(key: try AEADKey(algorithm, bytes: send)),
                receiver: TransportReceiver(key: try AEADKey(algorithm, bytes: receive), windowSize: replayWindow),
                remoteIdentity: remoteIdentity, handshakeHash: symmetric.h, algorithm: algorithm)
        } catch {
            throw .malformed("\(error)")
        }
    }

    // MARK: Helpers

    private mutating func start(pattern: Pattern, header: [UInt8]) {
        symmetric = SymmetricState(protocolName: pattern.protocolName)
        symmetric.mixHash(Self.prologue + header)
        if pattern == .ik {
            // Pre-message: the responder's static key, known to both.
            symmetric.mixHash(role == .initiator ? remoteIdentity!.bytes : identity.publicKey.bytes)
        }
    }

    private mutating func mixDH(_ local: X25519PrivateKey, _ remote: X25519PublicKey) throws(WireError) {
        do { symmetric.mixKey(try local.sharedSecret(with: remote)) } catch {
            throw .malformed("peer sent a low-order key")
        }
    }

    private mutating func learnRemoteIdentity(_ bytes: [UInt8]) throws(WireError) {
        do {
            let key = try PublicKey(bytes: bytes)
            if let expected = remoteIdentity, expected != key { throw WireError.malformed("peer identity changed mid-handshake") }
            remoteIdentity = key
            remoteStatic = try key.keyAgreementKey()
        } catch let error as WireError {
            throw error
        } catch {
            throw .malformed("peer identity is not a valid Ed25519 key")
        }
    }

    private func readKey(_ reader: inout WireReader) throws(WireError) -> X25519PublicKey {
        do { return try X25519PublicKey(bytes: try reader.read(Self.keyBytes, "ephemeral key")) } catch let error as WireError {
            throw error
        } catch {
            throw .malformed("bad ephemeral key")
        }
    }

    static func preferenceByte(_ algorithm: AEADAlgorithm) -> UInt8 {
        switch algorithm {
        case .aes256gcm: 1
        case .chacha20poly1305: 2
        }
    }

    static func algorithm(from byte: UInt8) throws(WireError) -> AEADAlgorithm {
        switch byte {
        case 1: .aes256gcm
        case 2: .chacha20poly1305
        default: throw .malformed("unknown AEAD algorithm \(byte)")
        }
    }
}
