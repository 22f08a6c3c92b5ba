import Testing
@testable import PilotAlerts

/// What an action sends, as text (nil for any other action).
private func sent(_ action: SMTPDialogue.Action) -> String? {
    if case .send(let bytes) = action { return String(decoding: bytes, as: UTF8.self) }
    return nil
}

private func failure(_ action: SMTPDialogue.Action) -> SMTPFailure? {
    if case .failed(let failure, _) = action { return failure }
    return nil
}

private extension SMTPDialogue {
    /// Feeds a reply's lines: every line but the last must ask to wait.
    mutating func reply(_ lines: String...) -> Action {
        for line in lines.dropLast() {
            let action = received(line: Array(line.utf8))
            #expect(action == .wait, "continuation line '\(line)' should wait, got \(action)")
        }
        return received(line: Array(lines.last!.utf8))
    }
}

private let message = Array("Subject: hi\r\n\r\nhello\r\n".utf8)

private func dialogue(_ security: SMTPDialogue.Security, _ credentials: SMTPDialogue.Credentials? = nil,
                      to: [String] = ["a@example.com"], message: [UInt8] = message) throws -> SMTPDialogue {
    try SMTPDialogue(heloName: "pilot.example", security: security, credentials: credentials,
                     from: "Pilot <pilot@example.com>", to: to, message: message)
}

@Suite struct SMTPDialogueTests {
    @Test func fullExchangeWithStartTLSAndAuthLogin() throws {
        var smtp = try dialogue(.starttls, .init(user: "pilot", password: "s3cret!"), to: ["a@example.com", "b@example.com"])
        #expect(sent(smtp.reply("220 mail.example.com ESMTP")) == "EHLO pilot.example\r\n")
        // Offered before TLS, PLAIN must not count once TLS is up.
        #expect(sent(smtp.reply("250-mail.example.com", "250-AUTH PLAIN", "250-STARTTLS", "250 SIZE 1000000")) == "STARTTLS\r\n")
        #expect(smtp.reply("220 2.0.0 Ready to start TLS") == .startTLS)
        #expect(sent(smtp.tlsEstablished()) == "EHLO pilot.example\r\n")
        #expect(sent(smtp.reply("250-mail.example.com", "250-AUTH LOGIN", "250 8BITMIME")) == "AUTH LOGIN\r\n")
        #expect(sent(smtp.reply("334 VXNlcm5hbWU6")) == "cGlsb3Q=\r\n")
        #expect(sent(smtp.reply("334 UGFzc3dvcmQ6")) == "czNjcmV0IQ==\r\n")
        #expect(sent(smtp.reply("235 2.7.0 Authentication successful")) == "MAIL FROM:<pilot@example.com>\r\n")
        #expect(sent(smtp.reply("250 2.1.0 Ok")) == "RCPT TO:<a@example.com>\r\n")
        #expect(sent(smtp.reply("250 2.1.5 Ok")) == "RCPT TO:<b@example.com>\r\n")
        #expect(sent(smtp.reply("250 2.1.5 Ok")) == "DATA\r\n")
        #expect(sent(smtp.reply("354 End data with <CR><LF>.<CR><LF>")) == "Subject: hi\r\n\r\nhello\r\n.\r\n")
        #expect(smtp.reply("250 2.0.0 Ok: queued as 4BCD") == .delivered(reply: "250 2.0.0 Ok: queued as 4BCD", farewell: Array("QUIT\r\n".utf8)))
        #expect(smtp.isFinished)
        // The 221 and the close that follow change nothing.
        #expect(smtp.reply("221 2.0.0 Bye") == .wait)
        #expect(smtp.connectionClosed() == .wait)
    }

    @Test func authPlainWhenOfferedAndLoginWhenAsked() throws {
        var smtp = try dialogue(.tls, .init(user: "pilot", password: "s3cret!"))
        #expect(sent(smtp.reply("220 ready")) == "EHLO pilot.example\r\n")
        #expect(sent(smtp.reply("250-mail", "250-AUTH LOGIN PLAIN", "250 SIZE 0")) == "AUTH PLAIN AHBpbG90AHMzY3JldCE=\r\n")
        // SIZE 0 is "no limit", but the server still wants to hear the size.
        #expect(sent(smtp.reply("235 2.7.0 ok")) == "MAIL FROM:<pilot@example.com> SIZE=\(message.count)\r\n")

        var asked = try dialogue(.tls, .init(user: "pilot", password: "s3cret!", mechanism: .login))
        _ = asked.reply("220 ready")
        #expect(sent(asked.reply("250-mail", "250 AUTH LOGIN PLAIN")) == "AUTH LOGIN\r\n")

        var unoffered = try dialogue(.tls, .init(user: "pilot", password: "s3cret!", mechanism: .plain))
        _ = unoffered.reply("220 ready")
        let refused = try #require(failure(unoffered.reply("250-mail", "250 AUTH LOGIN")))
        #expect(refused.description == "SMTP AUTH PLAIN is not offered by the server (auth=plain; it offers AUTH LOGIN)")
        #expect(refused.permanent)
    }

    @Test func refusedCredentialsNameTheStepAndTheReply() throws {
        var smtp = try dialogue(.tls, .init(user: "pilot", password: "wrong"))
        _ = smtp.reply("220 ready")
        _ = smtp.reply("250-mail", "250 AUTH PLAIN")
        let action = smtp.reply("535 5.7.8 Authentication credentials invalid")
        #expect(action == .failed(SMTPFailure("SMTP AUTH refused: 535 5.7.8 Authentication credentials invalid", permanent: true, code: 535),
                                  farewell: Array("QUIT\r\n".utf8)))
        #expect(smtp.isFinished)
    }

    @Test func multiLineRepliesWaitForTheirLastLineAndKeepTheirText() throws {
        var smtp = try dialogue(.tls, .init(user: "pilot", password: "s3cret!"))
        _ = smtp.reply("220-mail.example.com ESMTP", "220-no spam please", "220 ready")
        // The form from before RFC 4954 still names the mechanisms.
        #expect(sent(smtp.reply("250-mail.example.com", "250-PIPELINING", "250-AUTH=LOGIN", "250-ENHANCEDSTATUSCODES", "250 HELP")) == "AUTH LOGIN\r\n")
        _ = smtp.reply("334 VXNlcm5hbWU6")
        _ = smtp.reply("334 UGFzc3dvcmQ6")
        _ = smtp.reply("235 ok")
        _ = smtp.reply("250 ok")
        let refused = try #require(failure(smtp.reply("550-5.1.1 The account does not exist.", "550 5.1.1 Try again later.")))
        #expect(refused.description == "SMTP RCPT TO:<a@example.com> refused: 550 5.1.1 The account does not exist. 5.1.1 Try again later.")

        var mixed = try dialogue(.none)
        _ = mixed.reply("220 ready")
        #expect(mixed.received(line: Array("250-mail".utf8)) == .wait)
        #expect(failure(mixed.received(line: Array("251 other".utf8)))?.description == "SMTP malformed reply during EHLO: a 251 line inside a 250 reply")
    }

    @Test func refusalAtRecipientIsPermanentAndSendsNoData() throws {
        var smtp = try dialogue(.none, to: ["a@example.com", "nobody@example.com"])
        _ = smtp.reply("220 ready")
        _ = smtp.reply("250-mail", "250 8BITMIME")
        _ = smtp.reply("250 ok")
        #expect(sent(smtp.reply("250 ok")) == "RCPT TO:<nobody@example.com>\r\n")
        let action = smtp.reply("550 5.1.1 <nobody@example.com>: Recipient address rejected")
        let refused = try #require(failure(action))
        #expect(refused.description == "SMTP RCPT TO:<nobody@example.com> refused: 550 5.1.1 <nobody@example.com>: Recipient address rejected")
        #expect(refused.permanent)
        #expect(refused.code == 550)
        #expect(smtp.reply("354 go ahead") == .wait)
    }

    @Test func temporaryRefusalAtMailFromIsTransient() throws {
        var smtp = try dialogue(.none)
        _ = smtp.reply("220 ready")
        #expect(sent(smtp.reply("250 mail")) == "MAIL FROM:<pilot@example.com>\r\n")
        let refused = try #require(failure(smtp.reply("451 4.3.0 Mail server temporarily rejected message")))
        #expect(refused.description == "SMTP MAIL FROM refused: 451 4.3.0 Mail server temporarily rejected message")
        #expect(!refused.permanent)
        #expect(refused.code == 451)
    }

    @Test func dotStuffingAndLineEndings() throws {
        // Bare LF and bare CR become CRLF; a "." starting a line is doubled;
        // the end marker follows a line ending that is added when missing.
        let payload = SMTPDialogue.dataPayload(Array("a\n.b\r\n..c\rd\r\n\n.".utf8))
        #expect(String(decoding: payload, as: UTF8.self) == "a\r\n..b\r\n...c\r\nd\r\n\r\n..\r\n.\r\n")
        #expect(SMTPDialogue.dataPayload(Array("x.y\r\n".utf8)) == Array("x.y\r\n.\r\n".utf8))
        #expect(SMTPDialogue.dataPayload([]) == Array(".\r\n".utf8))

        var smtp = try dialogue(.none, message: Array("Subject: x\n\n.\nend".utf8))
        _ = smtp.reply("220 ready")
        _ = smtp.reply("250 mail")
        _ = smtp.reply("250 ok")
        _ = smtp.reply("250 ok")
        #expect(sent(smtp.reply("354 go")) == "Subject: x\r\n\r\n..\r\nend\r\n.\r\n")
    }

    @Test func authIsNeverSentBeforeTLS() throws {
        var smtp = try dialogue(.starttls, .init(user: "pilot", password: "s3cret!"))
        _ = smtp.reply("220 ready")
        let action = smtp.reply("250-mail", "250 AUTH PLAIN LOGIN")
        let refused = try #require(failure(action))
        #expect(refused.description.hasPrefix("SMTP STARTTLS is not offered by the server"))
        #expect(refused.permanent)
        #expect(sent(action) == nil)

        // Plaintext after STARTTLS's 220 would be read as if it came over TLS.
        var injected = try dialogue(.starttls, .init(user: "pilot", password: "s3cret!"))
        _ = injected.reply("220 ready")
        _ = injected.reply("250-mail", "250 STARTTLS")
        #expect(injected.reply("220 go ahead") == .startTLS)
        let early = try #require(failure(injected.reply("250 AUTH PLAIN")))
        #expect(early.description == "SMTP STARTTLS: the server sent more after its 220, before the TLS handshake")
        #expect(injected.tlsEstablished() == .wait)

        // TLS that did not follow STARTTLS is a bug in the shell.
        var confused = try dialogue(.starttls)
        _ = confused.reply("220 ready")
        #expect(failure(confused.tlsEstablished()) != nil)

        // tls=none is the explicit consent to plaintext credentials.
        var plain = try dialogue(.none, .init(user: "pilot", password: "s3cret!"))
        _ = plain.reply("220 ready")
        #expect(sent(plain.reply("250-mail", "250 AUTH PLAIN")) == "AUTH PLAIN AHBpbG90AHMzY3JldCE=\r\n")
    }

    @Test func oversizedRepliesAreRefused() throws {
        var fits = try dialogue(.none)
        #expect(sent(fits.reply("220 " + String(repeating: "x", count: SMTPDialogue.maxLineBytes - 4))) != nil)

        var long = try dialogue(.none)
        let refused = try #require(failure(long.reply("220 " + String(repeating: "x", count: SMTPDialogue.maxLineBytes - 3))))
        #expect(refused.description == "SMTP reply line longer than 4096 bytes during the greeting")
        #expect(!refused.permanent)

        var many = try dialogue(.none)
        _ = many.reply("220 ready")
        var last = SMTPDialogue.Action.wait
        for index in 0..<SMTPDialogue.maxReplyLines where last == .wait { last = many.received(line: Array("250-line \(index)".utf8)) }
        #expect(failure(last)?.description == "SMTP reply of more than 100 lines during EHLO")

        // A line that never ends reaches the dialogue once it is too long.
        var framer = SMTPLineFramer()
        framer.append([UInt8](repeating: UInt8(ascii: "a"), count: 3000))
        #expect(framer.nextLine() == nil)
        framer.append([UInt8](repeating: UInt8(ascii: "a"), count: 3000))
        let next = framer.nextLine()
        let runaway = try #require(next)
        #expect(runaway.count > SMTPDialogue.maxLineBytes)
        var fed = try dialogue(.none)
        #expect(failure(fed.received(line: runaway)) != nil)
    }

    @Test func framerSplitsLinesAcrossReads() {
        var framer = SMTPLineFramer()
        framer.append(Array("220 hel".utf8))
        #expect(framer.nextLine() == nil)
        framer.append(Array("lo\r\n250-a\n250 b\r\n25".utf8))
        #expect(framer.nextLine() == Array("220 hello".utf8))
        #expect(framer.nextLine() == Array("250-a".utf8))
        #expect(framer.nextLine() == Array("250 b".utf8))
        #expect(framer.nextLine() == nil)
        #expect(!framer.isEmpty)
        #expect(framer.takeRest() == Array("25".utf8))
        #expect(framer.isEmpty)
    }

    @Test func brokenConversationsAreTransient() throws {
        var garbled = try dialogue(.none)
        let malformed = try #require(failure(garbled.reply("hello there")))
        #expect(malformed.description == "SMTP malformed reply during the greeting: 'hello there'")
        #expect(!malformed.permanent)

        var dropped = try dialogue(.none)
        _ = dropped.reply("220 ready")
        _ = dropped.reply("250 mail")
        let closed = try #require(failure(dropped.connectionClosed()))
        #expect(closed.description == "SMTP connection closed by the server during MAIL FROM")
        #expect(!closed.permanent)

        var busy = try dialogue(.none)
        let greeting = try #require(failure(busy.reply("421 4.3.2 Too many connections")))
        #expect(greeting.description == "SMTP server refused the connection: 421 4.3.2 Too many connections")
        #expect(!greeting.permanent)
    }

    @Test func oldServersGetHeloWhenNothingNeedsEHLO() throws {
        var smtp = try dialogue(.none)
        _ = smtp.reply("220 ready")
        #expect(sent(smtp.reply("502 5.5.2 Error: command not recognized")) == "HELO pilot.example\r\n")
        #expect(sent(smtp.reply("250 hello")) == "MAIL FROM:<pilot@example.com>\r\n")

        var secure = try dialogue(.starttls)
        _ = secure.reply("220 ready")
        #expect(failure(secure.reply("502 5.5.2 Error: command not recognized"))?.permanent == true)
    }

    @Test func messageOverTheServersSizeIsRefusedBeforeSending() throws {
        var smtp = try dialogue(.none, message: [UInt8](repeating: UInt8(ascii: "x"), count: 2000))
        _ = smtp.reply("220 ready")
        let refused = try #require(failure(smtp.reply("250-mail", "250 SIZE 1000")))
        #expect(refused.description == "SMTP message of 2000 bytes is over the server's limit of 1000 (SIZE)")
        #expect(refused.permanent)
    }

    @Test func eightBitMessagesSayBodyWhenTheServerTakesIt() throws {
        var smtp = try dialogue(.none, message: Array("Subject: caf\u{E9}\r\n\r\nna\u{EF}ve\r\n".utf8))
        _ = smtp.reply("220 ready")
        #expect(sent(smtp.reply("250-mail", "250 8BITMIME")) == "MAIL FROM:<pilot@example.com> BODY=8BITMIME\r\n")
    }

    @Test func envelopeAddressesAreUnwrappedAndChecked() throws {
        #expect(try SMTPDialogue.envelopeAddress("Pilot Alerts <alerts@example.com>", what: "sender") == "alerts@example.com")
        #expect(try SMTPDialogue.envelopeAddress(" ops@example.com ", what: "recipient") == "ops@example.com")
        #expect(throws: SMTPFailure.self) { try SMTPDialogue.envelopeAddress("a@example.com>\r\nRCPT TO:<b@example.com", what: "recipient") }
        #expect(throws: SMTPFailure.self) { try dialogue(.none, to: []) }
        #expect(SMTPDialogue.validHeloName("bad name\r\n") == "localhost")
        #expect(SMTPDialogue.validHeloName("node-1.example") == "node-1.example")
    }

    @Test func base64MatchesTheRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors { #expect(SMTPDialogue.base64(Array(plain.utf8)) == encoded) }
        #expect(SMTPDialogue.base64([0xFF, 0xFE, 0x00]) == "//4A")
    }
}
