public import PilotCrypto

/// Time as the tunnel needs it: a monotonic clock for timers, and the wall
/// clock for handshake timestamps (which must keep increasing across
/// restarts of the initiator, so a replayed initiation can be refused).
public struct TunnelTime: Sendable, Equatable {
    /// Monotonic microseconds.
    public var now: Int64
    /// Unix milliseconds.
    public var wall: Int64
    public init(now: Int64, wall: Int64) {
        self.now = now
        self.wall = wall
    }
}

/// The encrypted tunnel to one peer, as a pure state machine: IK handshakes
/// over datagrams (the peer's key is known from the registry or the trust
/// store), per-direction session keys, rekeying every two minutes or 2^30
/// frames, expiry, keepalives for NAT mappings, and a bounded queue of
/// payloads waiting for a session. Nothing is ever sent unencrypted: until
/// a session exists, payloads wait.
public struct TunnelPeer: Sendable {
    public struct Timing: Sendable {
        public var rekeyAfter: Int64 = 120_000_000
        public var rejectAfter: Int64 = 180_000_000
        public var handshakeRetry: Int64 = 1_000_000
        public var handshakeGiveUp: Int64 = 15_000_000
        public var keepalive: Int64 = 10_000_000
        /// Without application traffic for this long, keepalives stop and
        /// the session is left to expire.
        public var idleAfter: Int64 = 300_000_000
        public var maxQueued = 256
        /// Data sent and nothing heard back for this long: the peer has
        /// probably restarted and lost the session, so handshake again.
        public var unanswered: Int64 = 5_000_000
        /// Data received and nothing sent back for this long: send a
        /// keepalive so the sender knows the session still works.
        public var passiveKeepalive: Int64 = 1_000_000
        /// Rekeys come up to this much after `rekeyAfter`, by session index:
        /// a thousand sessions set up in the same second (a hub's restart)
        /// do not all rekey in the same second two minutes later, and again
        /// every two minutes. (Retries need no spread: they keep the spread
        /// of the attempts they repeat, and the 1 s tick would round it away.)
        public var rekeySpread: Int64 = 10_000_000
        public init() {}

        /// A fraction of `span` fixed by `index` (a random session index).
        static func spread(_ index: UInt32, over span: Int64) -> Int64 {
            let mixed = (UInt64(index) &* 0x9E37_79B9_7F4A_7C15) >> 48 // 16 well-mixed bits
            return (span * Int64(mixed)) >> 16
        }
    }

    public enum Action: Equatable, Sendable {
        case transmit([UInt8])
        case deliver([UInt8])
        case established(AEADAlgorithm)
        case dropped(String)
    }

    struct Session: Sendable {
        var localIndex: UInt32
        var remoteIndex: UInt32
        var sender: TransportSender
        var receiver: TransportReceiver
        var createdAt: Int64
        var algorithm: AEADAlgorithm
        var initiatedHere: Bool

        /// The side that started a session rekeys it on time; the other side
        /// only if that fails, so both rarely start handshakes at once.
        func rekeyDue(_ now: Int64, _ timing: Timing) -> Bool {
            sender.needsRekey || now - createdAt >= timing.rekeyAfter + Timing.spread(localIndex, over: timing.rekeySpread)
                + (initiatedHere ? 0 : timing.handshakeGiveUp)
        }
    }

    struct Pending: Sendable {
        var handshake: Handshake
        var localIndex: UInt32
        var startedAt: Int64
        var sentAt: Int64
    }

    public let peer: PublicKey
    let identity: SigningKey
    let preference: AEADAlgorithm
    public let timing: Timing
    var current: Session?
    var previous: Session?
    /// A session this side answered, not used for sending until the
    /// initiator's first transport frame on it confirms it: an initiation
    /// alone (perhaps a recording, replayed) changes nothing.
    var next: Session?
    var pending: Pending?
    /// A cookie reply's cookie (mac2 key) and when it came; `lastMac1` is
    /// the mac1 of the initiation sent last, which a cookie reply answers.
    var cookie: (bytes: [UInt8], at: Int64)?
    var lastMac1: [UInt8] = []
    var queue: [[UInt8]] = []
    var lastInitiationTimestamp: UInt64 = 0
    var lastSentAt: Int64?
    var lastActivity: Int64?
    /// When data went out with nothing received since (nil once answered).
    var unansweredSince: Int64?
    /// When data arrived with nothing sent since (nil once answered).
    var unrepliedSince: Int64?
    public private(set) var handshakesCompleted = 0

    public init(identity: SigningKey, peer: PublicKey, preference: AEADAlgorithm, timing: Timing = Timing()) {
        self.identity = identity
        self.peer = peer
        self.preference = preference
        self.timing = timing
    }

    /// Session indices this peer answers to (for the endpoint's lookup table).
    public var localIndices: [UInt32] {
        [current?.localIndex, previous?.localIndex, next?.localIndex, pending?.localIndex].compactMap { $0 }
    }

    /// Whether `indices` are exactly `localIndices`, in order, without building that array.
    func holdsExactly(_ indices: [UInt32]) -> Bool {
        var at = 0
        func matches(_ index: UInt32?) -> Bool {
            guard let index else { return true }
            defer { at += 1 }
            return at < indices.count && indices[at] == index
        }
        return matches(current?.localIndex) && matches(previous?.localIndex) && matches(next?.localIndex)
            && matches(pending?.localIndex) && at == indices.count
    }

    public var isEstablished: Bool { current != nil }
    public var algorithm: AEADAlgorithm? { current?.algorithm }

    // MARK: Sending

    /// Encrypts `payload` for the peer, or queues it and starts a handshake.
    /// `freshIndex` is an unused session index the endpoint offers in case
    /// a handshake starts.
    public mutating func send(_ payload: [UInt8], time: TunnelTime, freshIndex: UInt32) -> [Action] {
        lastActivity = time.now
        var actions: [Action] = []
        if var session = usableSession(time.now) {
            if let frame = seal(payload, in: &session, now: time.now) {
                current = session
                if unansweredSince == nil { unansweredSince = time.now }
                actions.append(.transmit(frame))
                if pending == nil, session.rekeyDue(time.now, timing) {
                    actions += startHandshake(time: time, index: freshIndex)
                }
                return actions
            }
        }
        if queue.count >= timing.maxQueued {
            actions.append(.dropped("queue for \(peer.fingerprint) is full while the tunnel is being set up"))
        } else {
            queue.append(payload)
        }
        if pending == nil { actions += startHandshake(time: time, index: freshIndex) }
        return actions
    }

    private func usableSession(_ now: Int64) -> Session? {
        guard let current, now - current.createdAt < timing.rejectAfter, current.sender.nextCounter < TransportSender.hardLimitFrames else { return nil }
        return current
    }

    private mutating func seal(_ payload: [UInt8], in session: inout Session, now: Int64) -> [UInt8]? {
        guard let sealed = try? session.sender.seal(payload) else { return nil }
        lastSentAt = now
        unrepliedSince = nil
        return TunnelFrame.transport(receiverIndex: session.remoteIndex, sealed: sealed).encoded
    }

    private mutating func startHandshake(time: TunnelTime, index: UInt32) -> [Action] {
        do {
            var handshake = try Handshake.initiator(identity: identity, responder: peer, preference: preference)
            let message = try handshake.writeMessage(payload: UInt64(max(0, time.wall)).bigEndianBytes)
            pending = Pending(handshake: handshake, localIndex: index, startedAt: pending?.startedAt ?? time.now, sentAt: time.now)
            let fresh = cookie.flatMap { time.now - $0.at < HandshakeCookies.cookieLifetime ? $0.bytes : nil }
            let sealed = HandshakeCookies.seal(initiation: TunnelFrame.initiation(senderIndex: index, message: message).encoded, responder: peer, cookie: fresh)
            lastMac1 = HandshakeCookies.mac1(of: sealed)
            return [.transmit(sealed)]
        } catch {
            return [.dropped("cannot start a handshake with \(peer.fingerprint): \(error)")]
        }
    }

    /// Starts a handshake now unless a session exists (after a punch
    /// introduction, so both NATs open towards each other at once).
    public mutating func handshakeNow(time: TunnelTime, freshIndex: UInt32) -> [Action] {
        guard current == nil else { return [] }
        return startHandshake(time: time, index: freshIndex)
    }

    // MARK: Receiving

    /// The responder's first step: reads an initiation from an unknown
    /// sender and says who it claims to be (the IK pattern reveals it,
    /// encrypted to us), before any state is created for it.
    public static func readInitiation(
        _ message: [UInt8], identity: SigningKey, preference: AEADAlgorithm
    ) throws(WireError) -> (handshake: Handshake, initiator: PublicKey, timestamp: UInt64) {
        // `message` is a parsed initiation's: the handshake, then its MACs (checked by the router).
        guard message.count > HandshakeCookies.trailerBytes else { throw .truncated(what: "handshake initiation") }
        var handshake = Handshake.responder(identity: identity, preference: preference)
        let payload = try handshake.readMessage(Array(message.dropLast(HandshakeCookies.trailerBytes)))
        guard payload.count == 8, let initiator = handshake.remoteIdentity else { throw .malformed("initiation without a timestamp") }
        let timestamp = payload.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (handshake, initiator, timestamp)
    }

    /// Answers an initiation read by `readInitiation`: refuses a replayed
    /// (not newer) one, else installs the new session and flushes the queue.
    public mutating func respond(
        to handshake: Handshake, senderIndex: UInt32, timestamp: UInt64, time: TunnelTime, localIndex: UInt32
    ) -> [Action] {
        guard handshake.remoteIdentity == peer else { return [.dropped("initiation from another key")] }
        guard timestamp > lastInitiationTimestamp else { return [.dropped("replayed handshake initiation from \(peer.fingerprint)")] }
        var handshake = handshake
        do {
            let message = try handshake.writeMessage()
            let keys = try handshake.sessionKeys()
            lastInitiationTimestamp = timestamp
            // Confirmed (and used) once the initiator's first transport frame arrives on it.
            next = Session(localIndex: localIndex, remoteIndex: senderIndex, sender: keys.sender, receiver: keys.receiver,
                           createdAt: time.now, algorithm: keys.algorithm, initiatedHere: false)
            return [.transmit(TunnelFrame.response(senderIndex: localIndex, receiverIndex: senderIndex, message: message).encoded)]
        } catch {
            return [.dropped("handshake with \(peer.fingerprint) failed: \(error)")]
        }
    }

    public mutating func receive(_ frame: TunnelFrame, time: TunnelTime) -> [Action] {
        switch frame {
        case .initiation:
            return [.dropped("initiation must go through readInitiation")]
        case let .response(senderIndex, receiverIndex, message):
            guard var attempt = pending, attempt.localIndex == receiverIndex else { return [.dropped("response to no handshake in progress")] }
            do {
                _ = try attempt.handshake.readMessage(message)
                let keys = try attempt.handshake.sessionKeys()
                pending = nil
                install(Session(localIndex: receiverIndex, remoteIndex: senderIndex, sender: keys.sender, receiver: keys.receiver,
                                createdAt: time.now, algorithm: keys.algorithm, initiatedHere: true))
                // The responder sends nothing on the session until it hears on
                // it: with nothing queued, a keepalive confirms it at once.
                let flushed = flush(time.now)
                return [.established(keys.algorithm)] + (flushed.isEmpty ? keepalive(time.now) : flushed)
            } catch {
                return [.dropped("bad handshake response from \(peer.fingerprint): \(error)")]
            }
        case .cookieReply(let receiverIndex, let nonce, let sealed):
            guard let attempt = pending, attempt.localIndex == receiverIndex else { return [.dropped("cookie reply to no handshake in progress")] }
            guard let bytes = HandshakeCookies.openCookie(nonce: nonce, sealed: sealed, responder: peer, mac1: lastMac1) else {
                return [.dropped("cookie reply that does not open")]
            }
            let retry = cookie == nil || time.now - attempt.sentAt >= timing.handshakeRetry / 4
            cookie = (bytes, time.now)
            // Again at once, now with mac2 (at most 4 a retry period, whatever arrives).
            return retry ? startHandshake(time: time, index: attempt.localIndex) : []
        case let .transport(receiverIndex, sealed):
            for slot in 0..<3 {
                let candidate = switch slot {
                case 0: current
                case 1: previous
                default: next
                }
                guard var session = candidate, session.localIndex == receiverIndex else { continue }
                guard time.now - session.createdAt < timing.rejectAfter else { return [.dropped("frame for an expired session")] }
                do {
                    let payload = try session.receiver.open(sealed)
                    var actions: [Action] = []
                    switch slot {
                    case 0: current = session
                    case 1: previous = session
                    default:
                        // The initiator used the session we answered: it is confirmed.
                        next = nil
                        install(session)
                        actions += [.established(session.algorithm)] + flush(time.now)
                    }
                    unansweredSince = nil
                    if payload.isEmpty { return actions } // keepalive
                    lastActivity = time.now
                    if unrepliedSince == nil { unrepliedSince = time.now }
                    return [.deliver(payload)] + actions
                } catch {
                    return [.dropped("\(error)")]
                }
            }
            return [.dropped("frame for an unknown session")]
        }
    }

    private mutating func install(_ session: Session) {
        previous = current
        current = session
        unansweredSince = nil
        handshakesCompleted += 1
    }

    private mutating func flush(_ now: Int64) -> [Action] {
        guard var session = current else { return [] }
        var actions: [Action] = []
        for payload in queue {
            if let frame = seal(payload, in: &session, now: now) { actions.append(.transmit(frame)) }
        }
        queue.removeAll()
        current = session
        return actions
    }

    // MARK: Timers

    /// Time since an event, or "forever" when it never happened.
    private func elapsed(since event: Int64?, _ now: Int64) -> Int64 {
        event.map { now &- $0 } ?? .max
    }

    /// Retries and gives up handshakes, rekeys, expires old sessions and
    /// keeps the path alive. Call it about once a second, or at `nextDeadline`.
    public mutating func tick(time: TunnelTime, freshIndex: UInt32) -> [Action] {
        var actions: [Action] = []
        if let previousSession = previous, time.now - previousSession.createdAt >= timing.rejectAfter { previous = nil }
        // An answered handshake the initiator never used (a replay, or lost).
        if let unconfirmed = next, time.now - unconfirmed.createdAt >= timing.handshakeGiveUp { next = nil }
        if let currentSession = current, time.now - currentSession.createdAt >= timing.rejectAfter {
            previous = nil
            current = nil
        }
        if let attempt = pending {
            if time.now - attempt.startedAt >= timing.handshakeGiveUp {
                pending = nil
                if !queue.isEmpty { actions.append(.dropped("\(queue.count) messages for \(peer.fingerprint): no handshake answer in \(timing.handshakeGiveUp / 1_000_000) s")) }
                queue.removeAll()
            } else if time.now - attempt.sentAt >= timing.handshakeRetry {
                actions += startHandshake(time: time, index: freshIndex)
            }
        } else if let session = current, elapsed(since: lastActivity, time.now) < timing.idleAfter, session.rekeyDue(time.now, timing) {
            actions += startHandshake(time: time, index: freshIndex)
        } else if current != nil, let since = unansweredSince, time.now - since >= timing.unanswered {
            // Our data goes unanswered: the peer lost the session (a restart).
            unansweredSince = nil
            actions += startHandshake(time: time, index: freshIndex)
        }
        let keepaliveDue = elapsed(since: lastSentAt, time.now) >= timing.keepalive
            || unrepliedSince.map { time.now - $0 >= timing.passiveKeepalive } == true
        if elapsed(since: lastActivity, time.now) < timing.idleAfter, keepaliveDue { actions += keepalive(time.now) }
        return actions
    }

    /// The earliest time `tick` may have something to do, or nil when only
    /// a datagram or a send can change anything. Never later than the
    /// first timer `tick` would act on; earlier costs only an idle tick. A
    /// peer that holds nothing is due when it may be forgotten (`idle`
    /// after its last activity, see `isForgettable`).
    public func nextDeadline(forgetAfter idle: Int64) -> Int64? {
        var at = Int64.max
        if let previous { at = min(at, previous.createdAt + timing.rejectAfter) }
        if let next { at = min(at, next.createdAt + timing.handshakeGiveUp) }
        if let current { at = min(at, current.createdAt + timing.rejectAfter) }
        if let pending {
            at = min(at, pending.startedAt + timing.handshakeGiveUp, pending.sentAt + timing.handshakeRetry)
        } else if let current, lastActivity != nil {
            at = min(at, current.sender.needsRekey ? .min : current.createdAt + timing.rekeyAfter
                + Timing.spread(current.localIndex, over: timing.rekeySpread) + (current.initiatedHere ? 0 : timing.handshakeGiveUp))
            if let since = unansweredSince { at = min(at, since + timing.unanswered) }
        }
        // Keepalives (they stop by themselves `idleAfter` after the last activity).
        if current != nil, lastActivity != nil {
            at = min(at, lastSentAt.map { $0 + timing.keepalive } ?? .min)
            if let since = unrepliedSince { at = min(at, since + timing.passiveKeepalive) }
        }
        if current == nil, previous == nil, next == nil, pending == nil, queue.isEmpty {
            at = min(at, lastActivity.map { $0 + idle } ?? .min)
        }
        return at == .max ? nil : at
    }

    private mutating func keepalive(_ now: Int64) -> [Action] {
        guard var session = current, let frame = seal([], in: &session, now: now) else { return [] }
        current = session
        return [.transmit(frame)]
    }

    /// Whether the router may forget this peer: no session, no handshake
    /// and nothing queued, and quiet for `idle` (what it must remember, the
    /// newest initiation timestamp, the router keeps on its own).
    public func isForgettable(now: Int64, idle: Int64) -> Bool {
        current == nil && previous == nil && next == nil && pending == nil && queue.isEmpty && elapsed(since: lastActivity, now) >= idle
    }
}
