public import NIOCore
public import PilotCore
public import PilotCrypto
public import PilotWire
internal import PilotTransport

/// The reliable streams of the endpoint: a `StreamMux` driven from the loop.
/// Segments go out through the tunnels, a timer polls the connections at
/// their next deadline (acks, retransmissions), and what the mux decides
/// reaches the owner of each connection: a local client (`connectStream`),
/// a bulk sender, a service on a port (`acceptStreams`) or a built-in one.
extension TunnelEndpoint {
    /// What a stream service on a virtual port hears (on the tunnel loop).
    public enum StreamServiceEvent: Sendable {
        case accepted(StreamMux.ConnectionID)
        case message(StreamMux.ConnectionID, [UInt8])
        case closed(StreamMux.ConnectionID, StreamReset)
    }

    /// Accepts reliable stream connections on `port` (only from trusted
    /// peers, unless the port is 7 or 444); the handler runs on the tunnel loop.
    /// The future completes once the port listens (see `setTrustGate`).
    @discardableResult
    public func acceptStreams(on port: UInt16, _ handler: @escaping @Sendable (StreamServiceEvent) -> Void) -> EventLoopFuture<Void> {
        loop.submit {
            self.streams.listen(on: port)
            self.streamServices[port] = handler
        }
    }

    /// Sends a message on a stream connection (from the tunnel loop, e.g. a service handler).
    /// False when the connection is gone or its send buffer is full.
    @discardableResult
    public func sendOnStream(_ message: [UInt8], on connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        guard (try? streams.send(message, on: connection)) != nil else { return false }
        // Polled at the end of this turn of the loop, so that messages sent
        // one after another leave together (one datagram where they fit).
        if !streamPollQueued {
            streamPollQueued = true
            loop.execute {
                self.streamPollQueued = false
                self.pollStreams()
            }
        }
        return true
    }

    /// Messages sent on a connection and not yet on the wire (on the loop).
    public func queuedOnStream(_ connection: StreamMux.ConnectionID) -> Int {
        loop.preconditionInEventLoop()
        return streams.queuedMessages(on: connection)
    }

    /// Whether everything sent on a connection has reached the peer (on the loop).
    public func isStreamIdle(_ connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        return streams.isIdle(connection)
    }

    /// Transport counters of a connection (on the loop).
    public func streamStatistics(_ connection: StreamMux.ConnectionID) -> ReliableChannel.Statistics? {
        loop.preconditionInEventLoop()
        return streams.statistics(connection)
    }

    public func isStreamOpen(_ connection: StreamMux.ConnectionID) -> Bool {
        loop.preconditionInEventLoop()
        return streams.isOpen(connection)
    }

    /// Runs `handler` (on the loop) whenever stream traffic arrives, which is
    /// when acknowledgements free send space; nil stops it.
    public func whenStreamWritable(_ connection: StreamMux.ConnectionID, _ handler: (() -> Void)?) {
        loop.preconditionInEventLoop()
        streamSenders[connection] = handler
    }

    /// Closes a connection, telling the peer (on the loop).
    public func resetStream(_ connection: StreamMux.ConnectionID, reason: String) {
        loop.preconditionInEventLoop()
        streamSenders[connection] = nil
        streamWaiters[connection] = nil
        sendStream(streams.reset(connection, reason: reason))
    }

    /// Opens a stream connection to `port` of `peer` (opening the tunnel
    /// first). The handler runs on the loop with each message, then once
    /// with the failure that closed the connection.
    public func connectStream(to peer: PublicKey, candidates: [Endpoint], port: UInt16,
                              handler: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) async throws -> StreamMux.ConnectionID {
        try await openTunnel(to: peer, candidates: candidates)
        return try await loop.submit { () throws -> StreamMux.ConnectionID in
            let connection = try self.streams.open(to: peer, port: port, now: TunnelTime.current().now)
            self.streamWaiters[connection] = { result in
                if case .failure = result { self.streamWaiters[connection] = nil }
                handler(result)
            }
            return connection
        }.get()
    }

    /// Sends `count` messages on `connection` (the i-th is `message(i)`) as
    /// its window frees, and returns once the peer has acknowledged them
    /// all; the connection stays open for the caller to close. Throws
    /// `TunnelError.reset` with the peer's code and reason, and how many
    /// messages had gone, if the connection closes first. A bulk transfer's
    /// building block (pilot-bench measures throughput with it).
    public func sendAll(count: Int, on connection: StreamMux.ConnectionID, message: @escaping @Sendable (Int) -> [UInt8]) async throws {
        try await loop.flatSubmit { () -> EventLoopFuture<Void> in
            let promise = self.loop.makePromise(of: Void.self)
            var sent = 0
            // Driven by acks (after each incoming stream message), never a busy loop:
            // a task that re-queues itself would starve the socket reads.
            func pump() {
                guard self.streams.isOpen(connection) else {
                    self.streamSenders[connection] = nil
                    let why = self.resetReasons.removeValue(forKey: connection)
                    promise.fail(TunnelError.reset(StreamReset(why?.code ?? .closed,
                        "closed after \(sent) of \(count) messages" + (why.map { " (\($0.reason))" } ?? ""))))
                    return
                }
                while sent < count, self.streams.canSend(on: connection) {
                    try? self.streams.send(message(sent), on: connection)
                    sent += 1
                }
                self.pollStreams()
                if sent == count, self.streams.isIdle(connection) {
                    self.streamSenders[connection] = nil
                    promise.succeed(())
                }
            }
            self.streamSenders[connection] = pump
            pump()
            return promise.futureResult
        }.get()
    }

    /// Opens the tunnel to `peer` with a datagram ping (three tries) before
    /// a stream is opened over it: the stream's first window would otherwise
    /// wait in the handshake queue. Every stream client starts here.
    func openTunnel(to peer: PublicKey, candidates: [Endpoint]) async throws {
        for _ in 0..<3 {
            if (try? await ping(peer, candidates: candidates)) != nil { return }
        }
        throw TunnelError.timeout(peer.fingerprint, 9)
    }

    /// On the loop: the stream overlay messages of one datagram from `peer`.
    /// Ports other than echo and trust take connections from trusted peers only.
    func receiveStreams(_ messages: [OverlayMessage], from peer: PublicKey) {
        let gate = isTrusted
        let now = TunnelTime.current().now
        var outgoing: [StreamMux.Outgoing] = []
        var events: [StreamMux.Event] = []
        for message in messages {
            let (out, happened) = streams.receive(message, from: peer, now: now) { port in
                port == OverlayMessage.echoPort || port == OverlayMessage.trustPort || gate(peer)
            }
            outgoing += out
            events += happened
        }
        sendStream(outgoing)
        handle(events)
        // Acks free window space: let bulk senders continue.
        for sender in Array(streamSenders.values) { sender() }
    }

    /// Segments for one peer that fit together share a tunnel datagram
    /// (`OverlayMessage.pack`): a window of small messages, or acks
    /// beside data, costs one seal and one datagram instead of many.
    func sendStream(_ outgoing: [StreamMux.Outgoing]) {
        let time = TunnelTime.current()
        var start = outgoing.startIndex
        while start < outgoing.endIndex {
            let peer = outgoing[start].peer
            var end = start + 1
            while end < outgoing.endIndex, outgoing[end].peer == peer { end += 1 }
            for payload in OverlayMessage.pack(outgoing[start..<end].map(\.payload)) {
                transmit(router.send(payload, to: peer, candidates: [], time: time))
            }
            start = end
        }
        scheduleStreamPoll()
    }

    /// Hands each event to the connection's owner: a waiting client first,
    /// then the discard service, a service on the port, and else the echo.
    private func handle(_ events: [StreamMux.Event]) {
        for event in events {
            switch event {
            case let .accepted(connection, port):
                discard.accepted(connection, port: port)
                if let service = streamServices[port] {
                    serviceConnections[connection] = port
                    service(.accepted(connection))
                }
            case let .message(connection, bytes):
                if let waiter = streamWaiters[connection] {
                    waiter(.success(bytes))
                } else if discard.swallow(bytes, on: connection) {
                    // Counted and dropped: the discard service answers nothing.
                } else if let port = serviceConnections[connection], let service = streamServices[port] {
                    service(.message(connection, bytes))
                } else {
                    echo(bytes, on: connection)
                }
            case let .reset(connection, reason):
                discard.closed(connection)
                if let port = serviceConnections.removeValue(forKey: connection) { streamServices[port]?(.closed(connection, reason)) }
                streamWaiters.removeValue(forKey: connection)?(.failure(TunnelError.reset(reason)))
                if let sender = streamSenders.removeValue(forKey: connection) {
                    // A bulk sender learns why at once, not at the next ack.
                    resetReasons[connection] = reason
                    sender()
                    resetReasons[connection] = nil
                }
            }
        }
        pollStreams()
    }

    /// Polls the connections at their next deadline (acks, retransmissions).
    /// Sends what the streams have due and acts on what their poll decided:
    /// resets of idle or unanswered connections reach their owners, on a
    /// later turn of the loop (callers may be in the middle of sending).
    func pollStreams() {
        let (outgoing, events) = streams.poll(now: TunnelTime.current().now)
        sendStream(outgoing)
        if !events.isEmpty { loop.execute { self.handle(events) } }
    }

    private func scheduleStreamPoll() {
        guard let next = streams.nextDeadline() else { return }
        guard next < streamPollAt else { return }
        streamPoll?.cancel()
        streamPollAt = next
        let delay = max(0, next - TunnelTime.current().now)
        streamPoll = loop.assumeIsolated().scheduleTask(in: .microseconds(delay)) {
            self.streamPollAt = .max
            self.pollStreams()
            self.scheduleStreamPoll()
        }
    }
}
