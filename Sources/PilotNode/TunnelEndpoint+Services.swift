public import NIOCore
public import PilotCore
public import PilotCrypto
internal import PilotWire
internal import PilotTransport

/// The discard service (virtual port 9): swallows what trusted peers send
/// on a stream and counts the bytes, so that a benchmark can measure a
/// stream's throughput without an answer travelling back.
struct DiscardService {
    private var connections: Set<StreamMux.ConnectionID> = []
    private(set) var bytes = 0

    mutating func accepted(_ connection: StreamMux.ConnectionID, port: UInt16) {
        if port == OverlayMessage.discardPort { connections.insert(connection) }
    }

    /// Counts `message` if it came on a discard connection; false if not one.
    mutating func swallow(_ message: [UInt8], on connection: StreamMux.ConnectionID) -> Bool {
        guard connections.contains(connection) else { return false }
        bytes += message.count
        return true
    }

    mutating func closed(_ connection: StreamMux.ConnectionID) { connections.remove(connection) }
}

/// The built-in services every node has: echo on port 7 (datagrams and
/// streams, open to anyone with a tunnel, so that a ping needs no trust),
/// the ping client that uses it, and discard on port 9 (trusted peers).
extension TunnelEndpoint {
    /// The local port pings are sent from; echoes come back to it.
    static let pingClientPort: UInt16 = 0xFF07

    /// Bytes the discard service (port 9) has swallowed: for benchmarks.
    public var discardedBytes: Int {
        get async { (try? await loop.submit { self.discard.bytes }.get()) ?? 0 }
    }

    /// Round trip in microseconds to `peer`'s echo port, or a timeout error.
    public func ping(_ peer: PublicKey, candidates: [Endpoint], timeout: TimeAmount = .seconds(3)) async throws -> Int64 {
        try await loop.flatSubmit { () -> EventLoopFuture<Int64> in
            let id = UInt64.random(in: 1...UInt64.max)
            let promise = self.loop.makePromise(of: Int64.self)
            self.pings[id] = (TunnelTime.current().now, promise)
            let message = OverlayMessage(sourcePort: Self.pingClientPort, destinationPort: OverlayMessage.echoPort, data: id.bigEndianByteArray)
            self.sendNow(message.encoded, to: peer, candidates: candidates)
            self.loop.assumeIsolated().scheduleTask(in: timeout) {
                self.pings.removeValue(forKey: id)?.promise.fail(TunnelError.timeout(peer.fingerprint, Int(timeout.nanoseconds / 1_000_000_000)))
            }
            return promise.futureResult
        }.get()
    }

    /// On the loop: answers a datagram for the echo port or the ping client
    /// port; false if `message` is for another port.
    func answerBuiltIn(_ message: OverlayMessage, from peer: PublicKey) -> Bool {
        switch message.destinationPort {
        case OverlayMessage.echoPort:
            // The echo service answers anyone with a tunnel: ping needs no trust.
            let reply = OverlayMessage(sourcePort: OverlayMessage.echoPort, destinationPort: message.sourcePort, data: message.data)
            transmit(router.send(reply.encoded, to: peer, candidates: [], time: TunnelTime.current()))
            return true
        case Self.pingClientPort:
            guard message.data.count == 8 else { return true } // (an empty echo only opened the tunnel)
            let id = message.data.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if let waiting = pings.removeValue(forKey: id) { waiting.promise.succeed(TunnelTime.current().now - waiting.sentAt) }
            return true
        default:
            return false
        }
    }

    /// On the loop: the stream echo service on port 7 (the only stream
    /// service without an owner of its own). It never drops an echo: past
    /// its send buffer it resets the connection instead.
    func echo(_ message: [UInt8], on connection: StreamMux.ConnectionID) {
        do { try streams.send(message, on: connection) } catch {
            sendStream(streams.reset(connection, reason: "echo backlog full"))
        }
    }

    /// Sends `count` messages over one reliable stream to `peer`'s echo port
    /// and checks every echo comes back, complete and in order. Returns the
    /// elapsed microseconds. `pilot ping --stream` uses it.
    public func streamEcho(_ peer: PublicKey, candidates: [Endpoint], count: Int, size: Int = 64, timeout: TimeAmount = .seconds(120)) async throws -> Int64 {
        try await openTunnel(to: peer, candidates: candidates)
        return try await loop.flatSubmit { () -> EventLoopFuture<Int64> in
            let promise = self.loop.makePromise(of: Int64.self)
            let started = TunnelTime.current().now
            let connection: StreamMux.ConnectionID
            do { connection = try self.streams.open(to: peer, port: OverlayMessage.echoPort, now: started) } catch {
                promise.fail(error)
                return promise.futureResult
            }
            func message(_ index: Int) -> [UInt8] {
                var bytes = Array("echo \(index) ".utf8)
                while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: index &+ bytes.count)) }
                return bytes
            }
            var sent = 0, received = 0
            func pump() {
                // At most 1,024 echoes outstanding: the echo side's send buffer is bounded too.
                while sent < count, sent - received < 1024, self.streams.canSend(on: connection) {
                    try? self.streams.send(message(sent), on: connection)
                    sent += 1
                }
                self.pollStreams()
            }
            self.streamWaiters[connection] = { result in
                switch result {
                case .success(let bytes):
                    guard bytes == message(received) else {
                        self.streamWaiters[connection] = nil
                        self.sendStream(self.streams.reset(connection, reason: "out of order"))
                        promise.fail(TunnelError.reset(StreamReset(.closed, "echo \(received) came back wrong or out of order")))
                        return
                    }
                    received += 1
                    if received == count {
                        if let stats = self.streams.statistics(connection) {
                            self.logger.info("stream echo done", metadata: [
                                "segments": "\(stats.segmentsSent)", "retransmissions": "\(stats.retransmissions)",
                                "timeouts": "\(stats.timeouts)", "fast": "\(stats.fastRetransmissions)", "duplicates": "\(stats.duplicatesReceived)",
                            ])
                        }
                        self.streamWaiters[connection] = nil
                        self.sendStream(self.streams.reset(connection, reason: "done"))
                        promise.succeed(TunnelTime.current().now - started)
                    } else {
                        pump()
                    }
                case .failure(let error):
                    promise.fail(error)
                }
            }
            pump()
            self.loop.assumeIsolated().scheduleTask(in: timeout) {
                if self.streamWaiters.removeValue(forKey: connection) != nil {
                    self.sendStream(self.streams.reset(connection, reason: "timeout"))
                    promise.fail(TunnelError.timeout("\(received) of \(count) echoes from \(peer.fingerprint)", Int(timeout.nanoseconds / 1_000_000_000)))
                }
            }
            return promise.futureResult
        }.get()
    }
}

extension UInt64 {
    var bigEndianByteArray: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (56 - 8 * $0)) } }
}
