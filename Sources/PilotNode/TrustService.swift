public import Logging
public import NIOCore
public import PilotCore
public import PilotCrypto
public import PilotRegistry
public import PilotWire
internal import PilotTransport

/// The trust handshake on virtual port 444 and the trust book behind it,
/// persisted as `STATE/trust.json` (mode 0600). Confined to the tunnel loop.
///
/// Messages are small JSON datagrams inside the encrypted tunnel:
/// `{"t":"request","hostname":…,"why":…,"proof":…}` and the answers
/// `{"t":"approved"}`, `{"t":"pending"}`, `{"t":"rejected","reason":…}`.
/// A request's hostname is checked against the registry before it is shown.
public final class TrustService: @unchecked Sendable {
    public typealias Lookup = @Sendable (_ hostname: String) async throws -> NodeView

    let identity: SigningKey
    let hostname: String
    let path: String
    let joinToken: String?
    let tunnels: TunnelEndpoint
    let logger: Logger
    let lookup: Lookup
    private var book: TrustBook
    private var waiting: [PublicKey: EventLoopPromise<String>] = [:]
    /// One write covers every change made within 50 ms of the first (a
    /// fleet joining at once would otherwise write the whole book once per
    /// node); what waits on them (answers to peers, the callers of
    /// `approve`) goes on after the write.
    private lazy var saver = CoalescedWrite(loop: tunnels.loop, delay: .milliseconds(50)) { [unowned self] in self.write() }
    /// The trust book's largest size on disk (about 150 bytes a peer).
    static let maxBookBytes = 64 << 20

    public init(identity: SigningKey, hostname: String, stateDirectory: String, joinToken: String?,
                tunnels: TunnelEndpoint, logger: Logger, lookup: @escaping Lookup) throws {
        self.identity = identity
        self.hostname = hostname
        path = stateDirectory + "/trust.json"
        self.joinToken = joinToken
        self.tunnels = tunnels
        self.logger = logger
        self.lookup = lookup
        if LocalFile.exists(path) {
            let text = try LocalFile.readText(path, maxBytes: Self.maxBookBytes)
            do { book = try TrustBook(json: JSONValue.parse(text, limits: .init(maxBytes: Self.maxBookBytes, maxDepth: 8))) } catch {
                throw TrustError.corrupt("\(path): \(error)")
            }
        } else {
            book = TrustBook()
        }
        tunnels.listen(port: OverlayMessage.trustPort) { [self] peer, message in self.received(message, from: peer) }
        tunnels.setTrustGate { [self] peer in self.book.isTrusted(peer) }
    }

    var loop: any EventLoop { tunnels.loop }

    public func snapshot() async -> TrustBook {
        (try? await loop.submit { self.book }.get()) ?? TrustBook()
    }

    /// Asks `host` to trust this node; answers "approved", "pending" or throws.
    public func handshake(host: String, justification: String) async throws -> String {
        let view = try await lookup(host)
        let peer = view.record.publicKey
        let candidates = view.record.endpoints.compactMap { try? Endpoint(parsing: $0) }
        let outcome = try await loop.flatSubmit { () -> EventLoopFuture<TrustBook.Outcome> in
            let outcome = self.book.sent(to: peer, hostname: view.record.hostname, justification: justification, now: WallClock.nowMilliseconds() / 1000)
            return self.saveIfChanged(outcome).map { outcome }
        }.get()
        if case .refused(let reason) = outcome { throw TrustServiceError(reason) }
        var request = JSONObject([("t", .string("request")), ("hostname", .string(hostname)), ("why", .string(justification))])
        if let joinToken { request["proof"] = .string(TrustProof.make(token: joinToken, from: identity.publicKey, to: peer)) }
        let message = OverlayMessage(sourcePort: OverlayMessage.trustPort, destinationPort: OverlayMessage.trustPort,
                                     data: Array(JSONValue.object(request).description.utf8))
        // Datagrams can be lost: ask up to five times, a second apart.
        for _ in 0..<5 {
            let answer = try await loop.flatSubmit { () -> EventLoopFuture<String> in
                let promise = self.loop.makePromise(of: String.self)
                self.waiting[peer]?.fail(TrustServiceError("superseded"))
                self.waiting[peer] = promise
                self.tunnels.send(message, to: peer, candidates: candidates)
                self.loop.assumeIsolated().scheduleTask(in: .seconds(1)) {
                    if let waiter = self.waiting[peer], waiter.futureResult === promise.futureResult {
                        self.waiting[peer] = nil
                        promise.succeed("")
                    }
                }
                return promise.futureResult
            }.get()
            if !answer.isEmpty {
                if answer.hasPrefix("rejected") { throw TrustServiceError("\(view.record.hostname) \(answer)") }
                return answer
            }
        }
        throw TrustServiceError("no answer from \(view.record.hostname) on port 444 within 5 s")
    }

    public func approve(_ name: String, publish: [String]? = nil) async throws -> TrustBook.Entry {
        let entry = try await loop.flatSubmit { () -> EventLoopFuture<TrustBook.Entry> in
            do {
                let entry = try self.book.approve(name, now: WallClock.nowMilliseconds() / 1000, publish: publish)
                return self.save().map {
                    self.answer(entry.key, ["t": "approved"])
                    return entry
                }
            } catch { return self.loop.makeFailedFuture(error) }
        }.get()
        logger.notice("trust approved", metadata: ["peer": "\(entry.hostname)", "key": "\(entry.key.fingerprint)", "publish": "\(entry.publish.joined(separator: " "))"])
        return entry
    }

    /// On the loop: who a trusted key is and what it may publish beyond its own topics.
    func publisher(_ key: PublicKey) -> (hostname: String, grants: [String])? { book.publisher(key) }

    public func reject(_ name: String) async throws -> TrustBook.Entry {
        try await loop.flatSubmit { () -> EventLoopFuture<TrustBook.Entry> in
            do {
                let entry = try self.book.reject(name)
                return self.save().map {
                    self.answer(entry.key, ["t": "rejected", "reason": "the operator rejected the request"])
                    return entry
                }
            } catch { return self.loop.makeFailedFuture(error) }
        }.get()
    }

    public func untrust(_ name: String) async throws -> TrustBook.Entry {
        try await loop.flatSubmit { () -> EventLoopFuture<TrustBook.Entry> in
            do {
                let entry = try self.book.untrust(name)
                return self.save().map { entry }
            } catch { return self.loop.makeFailedFuture(error) }
        }.get()
    }

    // MARK: On the loop

    private func received(_ message: OverlayMessage, from peer: PublicKey) {
        guard let json = try? JSONValue.parse(message.data, limits: .init(maxBytes: 4096, maxDepth: 4)), let type = json["t"]?.stringValue else {
            logger.debug("unreadable trust message", metadata: ["peer": "\(peer.fingerprint)"])
            return
        }
        switch type {
        case "request":
            let claimed = json["hostname"]?.stringValue ?? ""
            let why = String((json["why"]?.stringValue ?? "").prefix(500))
            let sameFleet = joinToken.map { token in json["proof"]?.stringValue.map { TrustProof.verify($0, token: token, from: peer, to: identity.publicKey) } ?? false } ?? false
            // The claimed hostname must be the one the registry knows for this key.
            let lookup = self.lookup
            loop.makeFutureWithTask { try await lookup(claimed) }.assumeIsolated().whenComplete { result in
                let view: NodeView
                switch result {
                case .failure(let error):
                    // Not a verdict on the peer: the registry could not be asked.
                    self.logger.warning("cannot check a trust request at the registry", metadata: ["peer": "\(claimed)", "error": "\(error)"])
                    self.answer(peer, ["t": "rejected", "reason": "the registry could not confirm hostname '\(claimed)' (\(error)); try again"])
                    return
                case .success(let found): view = found
                }
                guard view.record.publicKey == peer else {
                    self.answer(peer, ["t": "rejected", "reason": "hostname '\(claimed)' does not belong to this key at the registry"])
                    return
                }
                let outcome = self.book.received(from: peer, hostname: view.record.hostname, justification: why, sameFleet: sameFleet,
                                                 now: WallClock.nowMilliseconds() / 1000)
                // Answered once the outcome is on disk: an approval the hub
                // forgot on a crash would leave the node refused.
                self.saveIfChanged(outcome).assumeIsolated().whenSuccess { self.answerRequest(outcome, from: peer, claimed: claimed, why: why) }
            }
        case "approved":
            _ = book.approvedByPeer(peer, now: WallClock.nowMilliseconds() / 1000)
            save().assumeIsolated().whenSuccess { self.waiting.removeValue(forKey: peer)?.succeed("approved") }
        case "pending":
            waiting.removeValue(forKey: peer)?.succeed("pending")
        case "rejected":
            book.rejectedByPeer(peer)
            let reason = json["reason"]?.stringValue ?? "no reason given"
            save().assumeIsolated().whenSuccess { self.waiting.removeValue(forKey: peer)?.succeed("rejected: \(reason)") }
        default:
            logger.debug("unknown trust message", metadata: ["type": "\(type)"])
        }
    }

    private func answerRequest(_ outcome: TrustBook.Outcome, from peer: PublicKey, claimed: String, why: String) {
        switch outcome {
        case .trusted(let reason):
            if let reason { logger.notice("trust approved automatically", metadata: ["peer": "\(claimed)", "why": "\(reason)"]) }
            answer(peer, ["t": "approved"])
        case .pending:
            logger.notice("trust requested; approve with 'pilot approve \(claimed)'", metadata: ["peer": "\(claimed)", "justification": "\(why)"])
            answer(peer, ["t": "pending"])
        case .refused(let reason):
            logger.error("trust request refused", metadata: ["peer": "\(claimed)", "reason": "\(reason)"])
            answer(peer, ["t": "rejected", "reason": reason])
        }
    }

    private func answer(_ peer: PublicKey, _ fields: [String: String]) {
        let object = JSONObject(fields.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) })
        tunnels.send(OverlayMessage(sourcePort: OverlayMessage.trustPort, destinationPort: OverlayMessage.trustPort,
                                    data: Array(JSONValue.object(object).description.utf8)), to: peer, candidates: [])
    }

    /// Saves the book if `outcome` changed it (a request from a peer
    /// trusted already, or a refusal, changes nothing).
    private func saveIfChanged(_ outcome: TrustBook.Outcome) -> EventLoopFuture<Void> {
        switch outcome {
        case .trusted(autoApproved: nil), .refused: loop.makeSucceededVoidFuture()
        case .trusted, .pending: save()
        }
    }

    /// Saves the book soon, once for every change until then; the future
    /// completes after the write (never failing: a write that fails is
    /// logged, as the change stands in memory either way).
    private func save() -> EventLoopFuture<Void> { saver.request() }

    private func write() {
        do { try LocalFile.writeAtomically(path, Array(book.json.description.utf8), mode: 0o600) } catch {
            logger.error("cannot save the trust book", metadata: ["error": "\(error)"])
        }
    }
}

public struct TrustServiceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
