internal import Logging
internal import NIOCore
public import PilotCore
internal import PilotEvents

extension EventService {
    // MARK: Publishing (the client side)

    /// Numbers and spools messages for `hubName` (committed before this
    /// returns), then sends them on; with `acknowledged: false` they go
    /// once, at most, without a spool.
    public func publish(to hubName: String, topic: Topic, payloads: [String], acknowledged: Bool) async throws -> Int {
        try await publish(to: hubName, messages: payloads.map { (topic, $0) }, acknowledged: acknowledged)
        return payloads.count
    }

    /// Numbers and spools messages of any topics in one transaction
    /// (committed before this returns), then sends them on; with
    /// `acknowledged: false` they go once, at most, without a spool.
    /// `spoolWhileRefused`: the node's own collection, whose messages wait
    /// in the spool (within its bound) while the hub does not trust this
    /// node yet, and go out once it does, instead of being dropped.
    public func publish(to hubName: String, messages: [(topic: Topic, payload: String)], acknowledged: Bool = true,
                        spoolWhileRefused: Bool = false) async throws {
        _ = try await publish(to: hubName, messages: messages, acknowledged: acknowledged, spoolWhileRefused: spoolWhileRefused, verdictBy: nil)
    }

    /// As above (acknowledged), then `confirmed` with the seconds until the
    /// hub had handled them all, or nil when it had not within `timeout`:
    /// how the fleet simulator measures the delay to the hub's log.
    public func publish(to hubName: String, messages: [(topic: Topic, payload: String)], spoolWhileRefused: Bool = false,
                        timeout: Double = 300, confirmed: @escaping @Sendable (Double?) -> Void) async throws {
        let began = NIODeadline.now()
        let verdict = try await publish(to: hubName, messages: messages, acknowledged: true, spoolWhileRefused: spoolWhileRefused,
                                        verdictBy: began + .milliseconds(Int64(timeout * 1000)))
        guard let verdict else { return confirmed(nil) }
        verdict.whenSuccess { verdict in
            confirmed(verdict.confirmed ? Double((NIODeadline.now() - began).nanoseconds) / 1e9 : nil)
        }
    }

    /// As above; with `verdictBy`, also the hub's verdict on these messages
    /// (spooled ones only), settled by that deadline at the latest.
    func publish(to hubName: String, messages: [(topic: Topic, payload: String)], acknowledged: Bool,
                 spoolWhileRefused: Bool = false, verdictBy deadline: NIODeadline?) async throws -> EventLoopFuture<PublishVerdicts.Verdict>? {
        if selfNames.contains(hubName) {
            await publishLocally(messages)
            var verdict = PublishVerdicts.Verdict(messages: messages.count)
            verdict.confirmed = true
            return deadline == nil ? nil : loop.makeSucceededFuture(verdict)
        }
        // Before the first message to a hub, find out whether it takes them
        // at all: a refusal (not trusted, no such node) is the publisher's
        // error, while a hub that is merely away gets them from the spool later.
        if !(spoolWhileRefused && acknowledged) {
            let refusal = try await loop.flatSubmit { [self] () -> EventLoopFuture<String?> in
                do { return try forwarder(for: hubName).firstContact() } catch { return loop.makeFailedFuture(error) }
            }.get()
            if let refusal { throw EventServiceError(refusal) }
        }
        return try await loop.submit { [self] () -> EventLoopFuture<PublishVerdicts.Verdict>? in
            guard !stopping else { throw EventServiceError("the node is stopping") }
            let forwarder = try forwarder(for: hubName)
            var verdict: EventLoopFuture<PublishVerdicts.Verdict>?
            if acknowledged {
                let range = try forwarder.spool.append(messages)
                // Registered before the hub can answer: its answers come through this loop.
                if let range, let deadline { verdict = forwarder.verdict(on: range, by: deadline) }
            } else {
                forwarder.sendUnacknowledged(messages)
            }
            forwarder.pump()
            return verdict
        }.get()
    }

    /// Why the hub was last unreachable or refused, if it was.
    func lastError(of hubName: String) async -> String? {
        try? await loop.submit { [self] in forwarders[hubName]?.lastError }.get()
    }

    func forwarder(for hubName: String) throws -> Forwarder {
        if let existing = forwarders[hubName] { return existing }
        let path = stateDirectory + "/spool-" + hubName + ".db"
        let spool: EventSpool
        do { spool = try EventSpool(path: path, limits: options.spool) } catch {
            throw EventServiceError("cannot open the spool \(path): \(error)")
        }
        let forwarder = Forwarder(hubName: hubName, spool: spool, service: self)
        forwarders[hubName] = forwarder
        return forwarder
    }

    /// Opens the spools left by an earlier run, so their messages go out.
    public func resumeSpools() {
        loop.execute { [self] in
            let names = ((try? LocalFile.listDirectory(stateDirectory)) ?? []).compactMap { name -> String? in
                guard name.hasPrefix("spool-"), name.hasSuffix(".db") else { return nil }
                return String(name.dropFirst(6).dropLast(3))
            }
            for name in names where (try? Hostname.validate(name)) != nil {
                guard let forwarder = try? forwarder(for: name) else { continue }
                if forwarder.spool.count > 0 {
                    logger.info("sending spooled events", metadata: ["hub": "\(name)", "messages": "\(forwarder.spool.count)"])
                    forwarder.pump()
                }
            }
        }
    }
}
