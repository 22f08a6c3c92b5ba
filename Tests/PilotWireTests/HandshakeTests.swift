import PilotCrypto
import PilotWire
import Testing

/// Drives both sides of a handshake to completion, returning their keys.
func handshake(
    initiator: SigningKey, responder: SigningKey, pinned: PublicKey?,
    initiatorPreference: AEADAlgorithm = .chacha20poly1305, responderPreference: AEADAlgorithm = .chacha20poly1305,
    payloads: (first: [UInt8], second: [UInt8], third: [UInt8]) = ([], [], [])
) throws -> (SessionKeys, SessionKeys, received: [[UInt8]]) {
    var client = try Handshake.initiator(identity: initiator, responder: pinned, preference: initiatorPreference)
    var server = Handshake.responder(identity: responder, preference: responderPreference)
    var received: [[UInt8]] = []
    received.append(try server.readMessage(client.writeMessage(payload: pinned == nil ? [] : payloads.first)))
    received.append(try client.readMessage(server.writeMessage(payload: payloads.second)))
    if !client.isComplete {
        received.append(try server.readMessage(client.writeMessage(payload: payloads.third)))
    }
    #expect(client.isComplete && server.isComplete)
    #expect(client.handshakeHash == server.handshakeHash)
    return (try client.sessionKeys(), try server.sessionKeys(), received)
}

@Suite struct HandshakeTests {
    let alice = SigningKey.generate()
    let registry = SigningKey.generate()

    @Test(arguments: [false, true])
    func bothPatternsAuthenticateBothSidesAndAgreeOnKeys(pinned: Bool) throws {
        var (client, server, received) = try handshake(
            initiator: alice, responder: registry, pinned: pinned ? registry.publicKey : nil,
            payloads: (Array("hello".utf8), Array("welcome".utf8), Array("register".utf8)))
        #expect(client.remoteIdentity == registry.publicKey)
        #expect(server.remoteIdentity == alice.publicKey)
        #expect(received.count == (pinned ? 2 : 3))
        #expect(received.last == (pinned ? Array("welcome".utf8) : Array("register".utf8)))

        let frame = try client.sender.seal(Array("heartbeat".utf8))
        #expect(try server.receiver.open(frame) == Array("heartbeat".utf8))
        let reply = try server.sender.seal(Array("ok".utf8))
        #expect(try client.receiver.open(reply) == Array("ok".utf8))
        // Each direction has its own key: a frame cannot be reflected back to its sender.
        let another = try client.sender.seal(Array("heartbeat".utf8))
        #expect(throws: WireError.authenticationFailed) { try client.receiver.open(another) }
    }

    @Test func theAEADIsNegotiatedAndTheFallbackWinsWhenEitherSideLacksAES() throws {
        let aes = AEADAlgorithm.hardwareAESAvailable
        let both = try handshake(initiator: alice, responder: registry, pinned: nil,
                                 initiatorPreference: aes ? .aes256gcm : .chacha20poly1305,
                                 responderPreference: aes ? .aes256gcm : .chacha20poly1305)
        #expect(both.0.algorithm == (aes ? .aes256gcm : .chacha20poly1305))
        for (mine, theirs) in [(AEADAlgorithm.chacha20poly1305, AEADAlgorithm.aes256gcm), (.aes256gcm, .chacha20poly1305)] where aes {
            let forced = try handshake(initiator: alice, responder: registry, pinned: registry.publicKey,
                                       initiatorPreference: mine, responderPreference: theirs)
            #expect(forced.0.algorithm == .chacha20poly1305 && forced.1.algorithm == .chacha20poly1305)
        }
    }

    @Test func anImpostorCannotCompleteIKAgainstAPinnedKey() throws {
        let impostor = SigningKey.generate()
        var client = try Handshake.initiator(identity: alice, responder: registry.publicKey, preference: .chacha20poly1305)
        var server = Handshake.responder(identity: impostor, preference: .chacha20poly1305)
        let first = try client.writeMessage(payload: Array("secret".utf8))
        // The impostor cannot even read the initiator's first payload...
        #expect(throws: WireError.authenticationFailed) { try server.readMessage(first) }
    }

    @Test func xxRevealsTheResponderKeySoTheCallerCanCheckItsPin() throws {
        let impostor = SigningKey.generate()
        var client = try Handshake.initiator(identity: alice, responder: nil, preference: .chacha20poly1305)
        var server = Handshake.responder(identity: impostor, preference: .chacha20poly1305)
        _ = try server.readMessage(client.writeMessage())
        _ = try client.readMessage(server.writeMessage())
        #expect(client.remoteIdentity == impostor.publicKey)
        #expect(client.remoteIdentity != registry.publicKey)
    }

    @Test func everyBitOfEveryHandshakeMessageIsAuthenticated() throws {
        // Flip each bit of the second XX message: the initiator must refuse it.
        var baseClient = try Handshake.initiator(identity: alice, responder: nil, preference: .chacha20poly1305)
        var server = Handshake.responder(identity: registry, preference: .chacha20poly1305)
        _ = try server.readMessage(baseClient.writeMessage())
        let response = try server.writeMessage(payload: [1, 2, 3])
        for bit in stride(from: 0, to: response.count * 8, by: 7) {
            var client = baseClient
            var tampered = response
            tampered[bit / 8] ^= 1 << (bit % 8)
            #expect(throws: WireError.self) { try client.readMessage(tampered) }
        }
        var client = baseClient
        #expect(try client.readMessage(response) == [1, 2, 3])
    }

    @Test func truncatedAndJunkMessagesAreTypedErrors() throws {
        var server = Handshake.responder(identity: registry, preference: .chacha20poly1305)
        #expect(throws: WireError.truncated(what: "handshake header")) { try server.readMessage([]) }
        #expect(throws: WireError.malformed("unknown handshake pattern 9")) { try server.readMessage([9, 1]) }
        #expect(throws: WireError.malformed("unknown AEAD algorithm 7")) { try server.readMessage([1, 7]) }
        #expect(throws: WireError.truncated(what: "ephemeral key")) { try server.readMessage([1, 2, 0, 0]) }
        var fresh = Handshake.responder(identity: registry, preference: .chacha20poly1305)
        let junk = [UInt8(1), 2] + SecureRandom.bytes(32) + [0x41] // XX with a plaintext payload byte
        #expect(throws: WireError.malformed("unencrypted handshake payload")) { try fresh.readMessage(junk) }
    }

    @Test func anXXFirstMessageRefusesAPayloadRatherThanSendItInClear() throws {
        var client = try Handshake.initiator(identity: alice, responder: nil, preference: .chacha20poly1305)
        #expect(throws: WireError.self) { try client.writeMessage(payload: [1]) }
    }

    @Test func messagesOutOfTurnAreRefused() throws {
        var client = try Handshake.initiator(identity: alice, responder: nil, preference: .chacha20poly1305)
        #expect(throws: WireError.self) { try client.readMessage([1, 2, 3]) }
        var server = Handshake.responder(identity: registry, preference: .chacha20poly1305)
        #expect(throws: WireError.self) { try server.writeMessage() }
        #expect(throws: WireError.self) { try server.sessionKeys() }
    }
}

@Suite struct TransportTests {
    @Test func replaysAndForgeriesAreRefusedAndDoNotMoveTheWindow() throws {
        var (client, server, _) = try handshake(initiator: .generate(), responder: .generate(), pinned: nil)
        let frames = try (0..<5).map { try client.sender.seal([UInt8($0)]) }
        #expect(try server.receiver.open(frames[3]) == [3])
        #expect(try server.receiver.open(frames[1]) == [1]) // out of order within the window
        #expect(throws: WireError.replayed(counter: 3)) { try server.receiver.open(frames[3]) }
        var forged = frames[4]
        forged[forged.count - 1] ^= 0x80
        #expect(throws: WireError.authenticationFailed) { try server.receiver.open(forged) }
        #expect(try server.receiver.open(frames[4]) == [4]) // the forgery did not burn counter 4
        #expect(throws: WireError.truncated(what: "transport frame counter")) { try server.receiver.open([1, 2]) }
        #expect(throws: WireError.truncated(what: "transport frame")) { try server.receiver.open(frames[0].prefix(20).map { $0 }) }
    }

    @Test func theHeaderIsAuthenticatedToo() throws {
        var (client, server, _) = try handshake(initiator: .generate(), responder: .generate(), pinned: nil)
        let frame = try client.sender.seal([7], header: [1, 2])
        #expect(throws: WireError.authenticationFailed) { try server.receiver.open(frame, header: [1, 3]) }
        #expect(try server.receiver.open(frame, header: [1, 2]) == [7])
    }
}
