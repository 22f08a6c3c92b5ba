#if canImport(Glibc)
internal import Glibc
#endif
public import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import NIOTLS
public import PilotAlerts

/// An SMTP server as an email receiver names it: `smtp://HOST:PORT`
/// (STARTTLS unless tls= says otherwise) or `smtps://HOST:PORT` (TLS from
/// the first byte), with its options.
public struct SMTPServer: Sendable, Equatable {
    public typealias Security = SMTPDialogue.Security
    public typealias AuthMechanism = SMTPDialogue.AuthMechanism

    public var host: String
    public var port: Int
    public var security: Security
    /// Credentials are sent only over TLS, unless security is `.none`.
    public var user: String?
    public var password: String?
    /// nil: PLAIN if the server offers it, else LOGIN.
    public var auth: AuthMechanism?
    /// PEM certificates trusted besides the system's (`ca=FILE`).
    public var caFile: String?
    /// No certificate verification at all (`insecure=true`).
    public var insecure: Bool
    /// For the whole submission, connecting included.
    public var timeoutSeconds: Double

    public init(host: String, port: Int, security: Security = .starttls, user: String? = nil, password: String? = nil,
                auth: AuthMechanism? = nil, caFile: String? = nil, insecure: Bool = false, timeoutSeconds: Double = 30) {
        self.host = host
        self.port = port
        self.security = security
        self.user = user
        self.password = password
        self.auth = auth
        self.caFile = caFile
        self.insecure = insecure
        self.timeoutSeconds = timeoutSeconds
    }

    /// `host:port` as the messages name it.
    public var display: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why a notification was not delivered; `permanent` says that sending the
/// same again will fail the same way (a 5xx, a configuration the server
/// does not support), so the caller gives up instead of retrying.
public struct DeliveryFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public var permanent: Bool

    public init(_ description: String, permanent: Bool) {
        self.description = description
        self.permanent = permanent
    }
}

/// Sends one message: over SMTP with `SMTPDialogue` deciding every step
/// (this only connects, frames lines, adds TLS and keeps the time), or
/// through a local sendmail.
public enum SMTPSender {
    /// `message` is the whole RFC 5322 message; `from` and `to` make the
    /// envelope. Returns the server's reply to the message (its queue id).
    public static func send(message: [UInt8], from: String, to: [String], server: SMTPServer, heloName: String? = nil,
                            group: any EventLoopGroup) async throws(DeliveryFailure) -> String {
        let credentials = server.user.map { SMTPDialogue.Credentials(user: $0, password: server.password ?? "", mechanism: server.auth) }
        let dialogue: SMTPDialogue
        do {
            dialogue = try SMTPDialogue(heloName: heloName ?? localHostname(), security: server.security, credentials: credentials,
                                        from: from, to: to, message: message)
        } catch {
            throw DeliveryFailure(error.description, permanent: true)
        }
        let tls = server.security == .none ? nil : try tlsContext(server)
        // IP addresses go without SNI; NIOSSL then checks the certificate
        // against the address it connected to.
        let serverName = isIPAddress(server.host) ? nil : server.host
        let timeout = TimeAmount.nanoseconds(Int64(max(0.001, server.timeoutSeconds) * 1e9))
        let deadline = NIODeadline.now() + timeout
        let implicitTLS = server.security == .tls
        let seconds = server.timeoutSeconds
        let display = server.display
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if implicitTLS, let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        SMTPClientHandler(dialogue: dialogue, startTLS: implicitTLS ? nil : tls, serverName: serverName, deadline: deadline,
                                          timeoutSeconds: seconds, display: display, loop: channel.eventLoop))
                }
            }
        // Several connections may be tried (happy eyeballs): the result is
        // the handler's on the one that won, taken on its loop as the
        // connection completes, before any reply can be read.
        let result = bootstrap.connect(host: server.host, port: server.port).flatMapThrowing { channel in
            try channel.pipeline.syncOperations.handler(type: SMTPClientHandler.self).result.futureResult
        }
        let delivery: EventLoopFuture<String>
        do { delivery = try await result.get() } catch {
            throw DeliveryFailure("SMTP cannot connect to \(display): \(error)", permanent: false)
        }
        do {
            return try await delivery.get()
        } catch let failure as DeliveryFailure {
            throw failure
        } catch {
            throw DeliveryFailure("SMTP connection to \(display) failed: \(error)", permanent: false)
        }
    }

    /// Hands the message to `PATH -t -i` (recipients from its headers, a
    /// lone "." not the end), with Unix line endings as sendmail expects.
    /// Exit 75 (EX_TEMPFAIL), 71, 74, a signal or the timeout are transient.
    public static func sendmail(path: String, message: [UInt8], timeoutSeconds: Double) async throws(DeliveryFailure) {
        var unix: [UInt8] = []
        unix.reserveCapacity(message.count)
        for (index, byte) in message.enumerated() where !(byte == 13 && index + 1 < message.count && message[index + 1] == 10) {
            unix.append(byte)
        }
        let outcome = await CommandRunner.run([path, "-t", "-i"], stdin: unix, timeoutSeconds: timeoutSeconds)
        let said = outcome.output.split(whereSeparator: \.isNewline).prefix(3).joined(separator: " / ")
        let detail = said.isEmpty ? "" : ": " + String(said.prefix(300))
        if outcome.timedOut { throw DeliveryFailure("sendmail \(path) timed out after \(timeoutSeconds) s\(detail)", permanent: false) }
        guard let code = outcome.exitCode else {
            // Not started at all: the path is wrong, and will stay wrong.
            if outcome.output.hasPrefix("cannot run") || outcome.output.hasPrefix("cannot create") {
                throw DeliveryFailure("sendmail \(outcome.output)", permanent: outcome.output.hasPrefix("cannot run"))
            }
            throw DeliveryFailure("sendmail \(path) was killed by a signal\(detail)", permanent: false)
        }
        guard code == 0 else {
            throw DeliveryFailure("sendmail \(path) exited with \(code)\(detail)", permanent: ![71, 74, 75].contains(code))
        }
    }

    private static func tlsContext(_ server: SMTPServer) throws(DeliveryFailure) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile = server.caFile {
            do {
                configuration.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw DeliveryFailure("SMTP cannot read the certificates in ca=\(caFile): \(error)", permanent: true)
            }
        }
        if server.insecure { configuration.certificateVerification = .none }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw DeliveryFailure("SMTP cannot set up TLS: \(error)", permanent: true)
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func localHostname() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Carries out `SMTPDialogue`'s actions on one connection and completes
/// `result` exactly once: with the server's reply to the message, or a
/// `DeliveryFailure`.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let result: EventLoopPromise<String>
    private var dialogue: SMTPDialogue
    private var framer = SMTPLineFramer()
    /// For STARTTLS; nil for plaintext and for TLS from the start.
    private let startTLS: NIOSSLContext?
    private let serverName: String?
    private let deadline: NIODeadline
    private let timeoutSeconds: Double
    private let display: String
    private var timer: Scheduled<Void>?
    private var upgrading = false
    private var done = false

    init(dialogue: SMTPDialogue, startTLS: NIOSSLContext?, serverName: String?, deadline: NIODeadline, timeoutSeconds: Double,
         display: String, loop: any EventLoop) {
        self.dialogue = dialogue
        self.startTLS = startTLS
        self.serverName = serverName
        self.deadline = deadline
        self.timeoutSeconds = timeoutSeconds
        self.display = display
        result = loop.makePromise()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            let seconds = timeoutSeconds == timeoutSeconds.rounded() ? String(Int(timeoutSeconds)) : String(timeoutSeconds)
            finish(context, .failure(DeliveryFailure("SMTP \(display) timed out after \(seconds) s waiting for \(dialogue.step)", permanent: false)))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        if !done {
            done = true
            result.fail(DeliveryFailure("SMTP connection to \(display) closed during \(dialogue.step)", permanent: false))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(unwrapInboundIn(data).readableBytesView)
        while !done, let line = framer.nextLine() {
            perform(dialogue.received(line: line), context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if upgrading, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            upgrading = false
            perform(dialogue.tlsEstablished(), context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let what = error is NIOSSLError || error is BoringSSLError ? "TLS with" : "connection to"
        finish(context, .failure(DeliveryFailure("SMTP \(what) \(display) failed during \(dialogue.step): \(error)", permanent: false)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        perform(dialogue.connectionClosed(), context)
        context.fireChannelInactive()
    }

    private func perform(_ action: SMTPDialogue.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .wait:
            break
        case .send(let bytes):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
        case .startTLS:
            guard framer.isEmpty else {
                // Plaintext after the 220: refused by the dialogue, never read as TLS.
                perform(dialogue.received(line: framer.takeRest()), context)
                return
            }
            guard let startTLS else {
                finish(context, .failure(DeliveryFailure("SMTP STARTTLS without a TLS configuration", permanent: true)))
                return
            }
            do {
                let handler = try NIOSSLClientHandler(context: startTLS, serverHostname: serverName)
                upgrading = true
                try context.pipeline.syncOperations.addHandler(handler, position: .first)
            } catch {
                finish(context, .failure(DeliveryFailure("SMTP STARTTLS with \(display) failed: \(error)", permanent: false)))
            }
        case .delivered(let reply, let farewell):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: farewell)), promise: nil)
            finish(context, .success(reply))
        case .failed(let failure, let farewell):
            if !farewell.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: farewell)), promise: nil) }
            finish(context, .failure(DeliveryFailure(failure.description, permanent: failure.permanent)))
        }
    }

    private func finish(_ context: ChannelHandlerContext, _ outcome: Result<String, DeliveryFailure>) {
        guard !done else { return }
        done = true
        timer?.cancel()
        switch outcome {
        case .success(let reply): result.succeed(reply)
        case .failure(let failure): result.fail(failure)
        }
        context.close(promise: nil)
    }
}
