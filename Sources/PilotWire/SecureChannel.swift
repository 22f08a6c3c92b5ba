public import PilotCrypto

/// One end of an encrypted channel over a byte stream: the handshake, then
/// transport frames, behind one small state machine. The carrier (a TCP
/// connection) only moves `StreamFrame`s in and out.
public struct SecureChannel: Sendable {
    public enum Event: Sendable, Equatable {
        /// Frames to send now (handshake replies).
        case send([StreamFrame])
        /// The handshake finished; `send` holds any last handshake frame.
        case established(send: [StreamFrame])
        /// An application message arrived.
        case message([UInt8])
    }

    private enum State: Sendable {
        case handshaking(Handshake)
        case established(SessionKeys)
        case failed
    }

    private var state: State
    public private(set) var remoteIdentity: PublicKey?
    public private(set) var handshakeHash: [UInt8] = []
    public private(set) var algorithm: AEADAlgorithm?

    /// The initiator: IK when the responder's key is known (pinned), XX otherwise.
    /// Returns the channel and the first frame to send.
    public static func initiator(
        identity: SigningKey, responder: PublicKey?, preference: AEADAlgorithm, firstPayload: [UInt8] = []
    ) throws(WireError) -> (SecureChannel, StreamFrame) {
        var handshake = try Handshake.initiator(identity: identity, responder: responder, preference: preference)
        let message = try handshake.writeMessage(payload: responder == nil ? [] : firstPayload)
        return (SecureChannel(state: .handshaking(handshake)), StreamFrame(.handshakeInitiation, message))
    }

    public static func responder(identity: SigningKey, preference: AEADAlgorithm) -> SecureChannel {
        SecureChannel(state: .handshaking(.responder(identity: identity, preference: preference)))
    }

    private init(state: State) { self.state = state }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// Feeds one frame from the peer. Any error leaves the channel failed:
    /// the carrier must close the connection.
    public mutating func receive(_ frame: StreamFrame) throws(WireError) -> Event {
        if frame.kind == .error {
            state = .failed
            let reason = String(decoding: frame.payload.prefix(512), as: UTF8.self).filter { !$0.isNewline }
            throw .peerRefused(reason)
        }
        switch state {
        case .failed:
            throw .malformed("channel already failed")
        case .handshaking(var handshake):
            do {
                guard frame.kind == handshake.nextKind else { throw WireError.malformed("expected a \(handshake.nextKind) frame, got \(frame.kind)") }
                _ = try handshake.readMessage(frame.payload)
                var out: [StreamFrame] = []
                if handshake.wantsToWrite {
                    let kind = handshake.nextKind
                    out.append(StreamFrame(kind, try handshake.writeMessage()))
                }
                if handshake.isComplete {
                    // A byte stream delivers in order: a small window suffices.
                    let keys = try handshake.sessionKeys(replayWindow: 64)
                    remoteIdentity = keys.remoteIdentity
                    handshakeHash = keys.handshakeHash
                    algorithm = keys.algorithm
                    state = .established(keys)
                    return .established(send: out)
                }
                state = .handshaking(handshake)
                return .send(out)
            } catch let error as WireError {
                state = .failed
                throw error
            } catch {
                state = .failed
                throw .malformed("\(error)")
            }
        case .established(var keys):
            guard frame.kind == .transport else {
                state = .failed
                throw .malformed("handshake frame on an established channel")
            }
            do {
                let message = try keys.receiver.open(frame.payload)
                state = .established(keys)
                return .message(message)
            } catch {
                state = .failed
                throw error
            }
        }
    }

    /// Encrypts one application message into a transport frame.
    public mutating func seal(_ message: [UInt8]) throws(WireError) -> StreamFrame {
        guard case .established(var keys) = state else { throw .malformed("channel is not established") }
        let sealed = try keys.sender.seal(message)
        state = .established(keys)
        return StreamFrame(.transport, sealed)
    }
}

extension StreamFrame.Kind: CustomStringConvertible {
    public var description: String {
        switch self {
        case .handshakeInitiation: "handshake initiation"
        case .handshakeResponse: "handshake response"
        case .handshakeFinish: "handshake finish"
        case .transport: "transport"
        case .error: "error"
        }
    }
}
