internal import Logging
internal import NIOCore
public import PilotCore
public import PilotEvents
public import PilotTransport

extension EventService {
    // MARK: Subscribing


    /// Serves a `subscribe` control stream: opens a connection to the hub,
    /// confirms to the CLI once the hub took every filter, then passes
    /// messages on (duplicates removed), and the CLI's acks back.
    public func subscribe(hubName: String, filters: [TopicFilter], durable: String?, stream: ControlStream) {
        if selfNames.contains(hubName) { return subscribeToSelf(filters: filters, durable: durable, stream: stream) }
        loop.execute { [self] in
            let subscription = Subscription(hubName: hubName, filters: filters, durable: durable, sink: ControlStreamSink(stream), service: self)
            subscriptions[ObjectIdentifier(subscription)] = subscription
            stream.onLine = { [weak subscription] line in
                guard case .ack(let id)? = try? EventRequest.parse(line) else { return }
                subscription?.acknowledge(id)
            }
            stream.onWritable = { [weak subscription] in subscription?.writable() }
            stream.onClose = { [weak self, weak subscription] in
                self?.loop.execute {
                    guard let self, let subscription else { return }
                    subscription.stop()
                    self.subscriptions[ObjectIdentifier(subscription)] = nil
                }
            }
            subscription.connect()
        }
    }

    /// `pilot subscribe` on the hub itself: a local subscription written to
    /// the control stream (a reader that falls behind loses messages, told
    /// by `DROP n`, unless durable: then it resumes after its last ack).
    func subscribeToSelf(filters: [TopicFilter], durable: String?, stream: ControlStream) {
        final class Dropped: @unchecked Sendable { var count = 0 }
        let dropped = Dropped()
        Task {
            let id = await subscribeLocally(filters: filters, durable: durable) { deliveries in
                guard stream.isWritable || durable != nil else {
                    dropped.count += deliveries.count
                    return
                }
                var out: [UInt8] = []
                if dropped.count > 0 {
                    out += Array(EventReply.dropped(dropped.count).line.utf8) + [0x0A]
                    dropped.count = 0
                }
                for delivery in deliveries { out += EventReply.messageBytes(id: delivery.id, delivery.message) + [0x0A] }
                stream.send(out)
            }
            loop.execute { [self] in
                stream.send(ControlSocket.ok(JSONObject([("hub", .string("self"))])))
                stream.onLine = { [weak self] line in
                    guard durable != nil, case .ack(let upTo)? = try? EventRequest.parse(line) else { return }
                    self?.acknowledgeLocally(id, upTo: upTo)
                }
                stream.onClose = { [weak self] in
                    self?.loop.execute {
                        self?.hub.close(.local(id))
                        self?.localSubscribers[id] = nil
                    }
                }
                if stream.isClosed {
                    hub.close(.local(id))
                    localSubscribers[id] = nil
                }
            }
        }
    }

    /// A part of this process subscribing to a hub elsewhere (the store):
    /// reconnects by itself; a durable one resumes after `acknowledge`.
    /// Returns once the hub confirmed, or throws its refusal.
    public func subscribe(hubName: String, filters: [TopicFilter], durable: String?,
                          handler: @escaping @Sendable ([Delivery]) -> Void) async throws -> RemoteSubscription {
        if selfNames.contains(hubName) {
            // This node is the hub (pilot up): its own broker, in process.
            let id = await subscribeLocally(filters: filters, durable: durable, handler: handler)
            return RemoteSubscription(acknowledge: { [weak self] upTo in self?.acknowledgeLocally(id, upTo: upTo) }, stop: { [weak self] in
                try? await self?.loop.submit {
                    guard let self else { return }
                    self.hub.close(.local(id))
                    self.localSubscribers[id] = nil
                }.get()
            })
        }
        final class Outcome: @unchecked Sendable { var promise: EventLoopPromise<Void>? }
        let outcome = Outcome()
        let promise = loop.makePromise(of: Void.self)
        outcome.promise = promise
        let sink = HandlerSink(handler: handler) { [loop] failure in
            loop.execute {
                guard let waiting = outcome.promise else { return }
                outcome.promise = nil
                if let failure { waiting.fail(EventServiceError(failure)) } else { waiting.succeed(()) }
            }
        }
        let subscription = try await loop.submit { [self] () -> Subscription in
            let subscription = Subscription(hubName: hubName, filters: filters, durable: durable, sink: sink, service: self)
            subscriptions[ObjectIdentifier(subscription)] = subscription
            subscription.connect()
            return subscription
        }.get()
        try await promise.futureResult.get()
        return RemoteSubscription(acknowledge: { [loop] upTo in loop.execute { subscription.acknowledge(upTo) } },
                                  stop: { [weak self] in await self?.finish(subscription) },
                                  live: { subscription.connection != nil && subscription.confirmed })
    }

    // MARK: Stopping

    /// Ends a subscription once what it sent (its last acknowledgement)
    /// has reached the hub, so a durable one resumes exactly after it.
    func finish(_ subscription: Subscription) async {
        while let busy = try? await loop.submit({ [self] in subscription.connection.map { !tunnels.isStreamIdle($0) } ?? false }).get(), busy {
            do { try await Task.sleep(for: .milliseconds(10)) } catch { break }
        }
        try? await loop.submit { [self] in
            subscription.stop()
            subscriptions[ObjectIdentifier(subscription)] = nil
        }.get()
    }

    /// Stops the event service as the node stops: no more publications;
    /// subscriptions end after their acknowledgements reached the hub;
    /// each forwarder connected to its hub waits until the hub has
    /// acknowledged everything it spooled (one whose hub is away keeps its
    /// spool for the next start); the broker commits what it holds. Waits
    /// as long as that takes: the daemon's shutdown bound decides, and
    /// `progress` says what is still waited for.
    public func shutdown(progress: ShutdownProgress) async {
        let open = (try? await loop.submit { [self] () -> [Subscription] in
            stopping = true
            return Array(subscriptions.values)
        }.get()) ?? []
        if !open.isEmpty { progress.waiting("node", "ending \(open.count) subscriptions") }
        for subscription in open { await finish(subscription) }
        while true {
            let draining = (try? await loop.submit { [self] in
                forwarders.values.filter { $0.connection != nil && $0.spool.count > 0 }.map { "\($0.hubName) to acknowledge \($0.spool.count) spooled messages" }
            }.get()) ?? []
            guard !draining.isEmpty else { break }
            progress.waiting("node", "waiting for " + draining.sorted().joined(separator: ", "))
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        progress.waiting("node", "committing the event log")
        try? await loop.submit { [self] in
            maintenance?.cancel()
            for forwarder in forwarders.values { forwarder.abandonVerdicts() }
            for (name, forwarder) in forwarders where forwarder.spool.count > 0 {
                logger.notice("messages stay spooled for the next start", metadata: ["hub": "\(name)", "messages": "\(forwarder.spool.count)"])
            }
            guard hub.needsCommit else { return }
            do throws(EventHub<Connection>.CommitError) { try hub.commit(now: clock.wallSeconds()) } catch {
                logger.error("event hub cannot store publications; the publishers will send them again", metadata: ["error": "\(error.reason)"])
            }
        }.get()
    }
}
