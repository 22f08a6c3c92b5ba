public import NIOCore
public import PilotCrypto
public import PilotWire

/// What a secure stream tells its owner. All calls happen on the
/// connection's event loop.
public protocol SecureStreamDelegate: AnyObject {
    func secureStreamEstablished(_ stream: SecureStreamHandler)
    func secureStream(_ stream: SecureStreamHandler, received message: [UInt8])
    /// Called once, when the connection is gone; `reason` says why when it
    /// was not a clean close.
    func secureStreamClosed(_ stream: SecureStreamHandler, reason: String?)
}

/// Carries a `SecureChannel` over a TCP connection: cuts the byte stream
/// into frames, runs the handshake, and turns transport frames into
/// messages. Any protocol error closes the connection, after telling the
/// peer why in an error frame.
public final class SecureStreamHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var secure: SecureChannel
    private var decoder: StreamFrameDecoder
    private var firstFrame: StreamFrame?
    private let handshakeTimeout: TimeAmount
    private let idleTimeout: TimeAmount?
    private var context: ChannelHandlerContext?
    private var timeout: Scheduled<Void>?
    private var lastActivity = NIODeadline.now()
    private var closedReason: String?
    private var didClose = false
    /// Held strongly until the connection closes (then released), so a
    /// per-connection delegate lives exactly as long as its connection.
    public var delegate: (any SecureStreamDelegate)?
    public private(set) var remoteAddress: String = "unknown"
    /// Set before the connection is active to turn it away with this reason.
    public var refusal: String?

    public init(
        channel: SecureChannel, firstFrame: StreamFrame? = nil, maxPayload: Int,
        handshakeTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount? = nil,
        delegate: (any SecureStreamDelegate)?
    ) {
        secure = channel
        self.firstFrame = firstFrame
        decoder = StreamFrameDecoder(maxPayload: maxPayload)
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.delegate = delegate
    }

    public var isEstablished: Bool { secure.isEstablished }
    public var remoteIdentity: PublicKey? { secure.remoteIdentity }
    public var handshakeHash: [UInt8] { secure.handshakeHash }
    public var algorithm: AEADAlgorithm? { secure.algorithm }
    public var eventLoop: (any EventLoop)? { context?.eventLoop }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.channel.remoteAddress?.ipAddress { remoteAddress = address }
    }

    public func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress?.ipAddress { remoteAddress = address }
        if let refusal {
            context.fireChannelActive()
            return close(reason: refusal)
        }
        if let firstFrame {
            write(firstFrame)
            self.firstFrame = nil
        }
        arm(handshakeTimeout, reason: "handshake timed out")
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !didClose else { return }
        let buffer = unwrapInboundIn(data)
        decoder.feed(buffer.readableBytesView)
        do {
            while !didClose, let frame = try decoder.next() {
                switch try secure.receive(frame) {
                case .send(let frames):
                    frames.forEach(write)
                case .established(let frames):
                    frames.forEach(write)
                    timeout?.cancel()
                    lastActivity = .now()
                    if let idleTimeout { arm(idleTimeout, reason: "connection idle") }
                    delegate?.secureStreamEstablished(self)
                case .message(let message):
                    lastActivity = .now() // the idle timer checks this when it fires
                    delegate?.secureStream(self, received: message)
                }
            }
        } catch {
            if case .peerRefused = error { close(reason: error.description, tellPeer: false) } else { close(reason: error.description) }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        let wasClosed = didClose
        didClose = true
        if !wasClosed { closedReason = closedReason ?? (decoder.bufferedBytes > 0 ? "connection closed in the middle of a frame" : nil) }
        delegate?.secureStreamClosed(self, reason: closedReason)
        delegate = nil
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(reason: "\(error)", tellPeer: false)
    }

    /// Encrypts and sends one message. False when the channel cannot send.
    @discardableResult
    public func send(_ message: [UInt8]) -> Bool {
        guard !didClose, secure.isEstablished else { return false }
        do {
            write(try secure.seal(message))
            return true
        } catch {
            close(reason: "\(error)")
            return false
        }
    }

    /// Closes the connection; unless the peer hung up itself, it is first
    /// told why in an error frame.
    public func close(reason: String, tellPeer: Bool = true) {
        guard !didClose, let context else { return }
        didClose = true
        closedReason = reason
        timeout?.cancel()
        if tellPeer, context.channel.isActive {
            write(StreamFrame(.error, Array(reason.prefix(400).utf8)))
        }
        context.close(promise: nil)
    }

    private func write(_ frame: StreamFrame) {
        guard let context, context.channel.isActive else { return }
        let buffer = context.channel.allocator.buffer(bytes: frame.encoded)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    /// One timer per connection, not re-armed per message (that would cost
    /// a priority-queue removal per frame): when it fires after activity,
    /// it sets itself again for the rest of the idle period.
    private func arm(_ amount: TimeAmount, reason: String) {
        timeout?.cancel()
        guard let context else { return }
        let deadline = lastActivity + amount
        timeout = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            if secure.isEstablished, let idleTimeout, lastActivity + idleTimeout > .now() {
                arm(idleTimeout, reason: reason)
            } else {
                close(reason: reason)
            }
        }
    }
}
