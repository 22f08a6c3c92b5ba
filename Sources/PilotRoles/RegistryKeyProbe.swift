internal import NIOCore
internal import NIOPosix
internal import PilotCore
internal import PilotCrypto
internal import PilotTransport
internal import PilotWire

/// Learns a registry's identity key the way a node does on first contact:
/// an XX handshake (under a throwaway key of our own) proves which key the
/// registry holds; the connection then closes without a request.
enum RegistryKeyProbe {
    static func fetch(_ registry: Endpoint, on loop: any EventLoop, timeout: TimeAmount = .seconds(5)) -> EventLoopFuture<PublicKey> {
        let promise = loop.makePromise(of: PublicKey.self)
        let probe = Probe(promise: promise)
        let handler: SecureStreamHandler
        do {
            let (channel, first) = try SecureChannel.initiator(identity: SigningKey.generate(), responder: nil, preference: AEADAlgorithm.localPreference())
            handler = SecureStreamHandler(channel: channel, firstFrame: first, maxPayload: 4096, handshakeTimeout: timeout, delegate: probe)
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        let bound = NIOLoopBound((handler, probe), eventLoop: loop) // the initializer and the failure run on this same loop
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value.0) } }
            .connect(host: registry.host, port: Int(registry.port))
            .whenFailure { error in bound.value.1.finish(.failure(error)) }
        return promise.futureResult
    }

    private final class Probe: SecureStreamDelegate {
        let promise: EventLoopPromise<PublicKey>
        private var done = false
        init(promise: EventLoopPromise<PublicKey>) { self.promise = promise }

        /// The first outcome wins (a close follows every success).
        func finish(_ result: Result<PublicKey, any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }

        func secureStreamEstablished(_ stream: SecureStreamHandler) {
            finish(stream.remoteIdentity.map { .success($0) } ?? .failure(ProbeError("the registry proved no key")))
            stream.close(reason: "key learnt", tellPeer: false)
        }

        func secureStream(_ stream: SecureStreamHandler, received message: [UInt8]) {}

        func secureStreamClosed(_ stream: SecureStreamHandler, reason: String?) {
            finish(.failure(ProbeError(reason ?? "the registry closed the connection before the handshake finished")))
        }
    }

    struct ProbeError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// A registry key pinned in a file: its base64, first on the first line.
enum RegistryKeyPin {
    static func read(_ path: String) -> PublicKey? {
        guard let text = try? LocalFile.readText(path, maxBytes: 1024) else { return nil }
        return try? PublicKey(base64: text.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? "")
    }
}
