public import PilotCore
public import PilotCrypto

/// What guards a node's handshakes before any Diffie-Hellman or per-peer
/// state, as WireGuard does (its whitepaper, section 5.4.4):
///
/// - every initiation ends in `mac1 | mac2` (16 bytes each). `mac1` is
///   keyed by the responder's public key, so a sender that does not know
///   whom it talks to (a scanner) costs one HMAC; `mac2` is keyed by a
///   cookie and all zeros when the initiator has none;
/// - under load the responder answers an initiation without a valid `mac2`
///   with a cookie reply instead: the cookie is an HMAC of the sender's
///   address under a secret that changes every two minutes, encrypted to
///   the initiator (the key is derived from the responder's public key and
///   `mac1` is the associated data, so only who sent that initiation can
///   read it). Holding a cookie proves the sender receives datagrams at the
///   address it claims, which is what makes per-address limits mean
///   something under a flood of forged source addresses.
public enum HandshakeCookies {
    public static let macBytes = 16
    /// Both MACs at the end of an initiation.
    public static let trailerBytes = 2 * macBytes
    /// A cookie is usable this long after it arrived (the responder's secret
    /// changes every `secretLifetime`; a cookie of the previous secret still
    /// counts, so this is safe).
    public static let cookieLifetime: Int64 = 120_000_000
    public static let secretLifetime: Int64 = 120_000_000
    static let nonceBytes = AEADAlgorithm.nonceByteCount

    static func mac1Key(_ responder: PublicKey) -> [UInt8] { SHA256.hash(Array("mac1----".utf8) + responder.bytes) }
    static func cookieKey(_ responder: PublicKey) -> [UInt8] { SHA256.hash(Array("cookie--".utf8) + responder.bytes) }

    static func mac(_ bytes: ArraySlice<UInt8>, key: [UInt8]) -> [UInt8] {
        Array(HMACSHA256.authenticate(Array(bytes), key: key).prefix(macBytes))
    }

    /// The initiation `frame` (without MACs) with its trailer appended.
    public static func seal(initiation frame: [UInt8], responder: PublicKey, cookie: [UInt8]?) -> [UInt8] {
        var out = frame
        out += mac(frame[...], key: mac1Key(responder))
        out += cookie.map { mac(out[...], key: $0) } ?? [UInt8](repeating: 0, count: macBytes)
        return out
    }

    /// The `mac1` of a sealed initiation (what a cookie reply is bound to).
    public static func mac1(of sealed: [UInt8]) -> [UInt8] {
        Array(sealed[(sealed.count - trailerBytes)..<(sealed.count - macBytes)])
    }

    static func validMac1(_ datagram: [UInt8], responder: PublicKey) -> Bool {
        guard datagram.count > trailerBytes else { return false }
        let end = datagram.count - trailerBytes
        return ConstantTime.equal(mac(datagram[..<end], key: mac1Key(responder)), Array(datagram[end..<(end + macBytes)]))
    }

    static func validMac2(_ datagram: [UInt8], cookie: [UInt8]) -> Bool {
        guard datagram.count > trailerBytes else { return false }
        let end = datagram.count - macBytes
        return ConstantTime.equal(mac(datagram[..<end], key: cookie), Array(datagram[end...]))
    }

    /// Opens a cookie reply's sealed part: the cookie, or nil if it was not
    /// made for the initiation whose `mac1` this is.
    public static func openCookie(nonce: [UInt8], sealed: [UInt8], responder: PublicKey, mac1: [UInt8]) -> [UInt8]? {
        guard let key = try? AEADKey(.chacha20poly1305, bytes: cookieKey(responder)),
              let cookie = try? key.open(sealed, nonce: nonce, additionalData: mac1), cookie.count == macBytes else { return nil }
        return cookie
    }

    /// The responder's side: the rotating secret, the load measure, and a
    /// token bucket per source address (bounded; see `Limits`).
    public struct Guard: Sendable {
        public struct Limits: Sendable {
            /// Initiations per second (that passed mac1) beyond which
            /// every initiation must carry a valid mac2.
            public var loadThreshold = 200
            /// Per source IP address (every port), a bucket of handshake
            /// initiations: 500 hosts behind one NAT address reconnecting
            /// at once take 500, and rekeying every two minutes takes about
            /// 4 a second, far below these.
            public var perSourceBurst = 1_000.0
            public var perSourcePerSecond = 100.0
            /// Sources remembered at most (a full table forgets the idle).
            public var maxSources = 20_000
            public init() {}
        }

        public let limits: Limits
        public let responder: PublicKey
        private var secret: [UInt8]
        private var previousSecret: [UInt8]
        private var secretSince: Int64?
        private var window: (second: Int64, count: Int, previous: Int) = (.min, 0, 0)
        private var sources: [String: TokenBucket] = [:]

        public init(responder: PublicKey, limits: Limits = .init()) {
            self.responder = responder
            self.limits = limits
            secret = SecureRandom.bytes(32)
            previousSecret = SecureRandom.bytes(32)
        }

        public enum Verdict: Equatable, Sendable {
            case proceed
            /// Answer with this cookie reply (no DH, no state).
            case cookieReply([UInt8])
            case drop(String)
        }

        /// Checks an initiation datagram from `source` before any DH work.
        /// `senderIndex` is echoed in a cookie reply so the initiator can
        /// match it to its pending handshake.
        public mutating func check(_ datagram: [UInt8], senderIndex: UInt32, from source: Route, now: Int64) -> Verdict {
            guard HandshakeCookies.validMac1(datagram, responder: responder) else { return .drop("initiation with a bad mac1") }
            rotate(now)
            let second = now / 1_000_000
            if second != window.second {
                window = (second, 0, second == window.second + 1 ? window.count : 0)
            }
            window.count += 1
            let underLoad = window.count > limits.loadThreshold || window.previous > limits.loadThreshold
            // The relay forwards for many nodes from one address: the beacon
            // bounds what each node sends there, so it has no bucket here.
            guard case .direct(let endpoint) = source else { return .proceed }
            if underLoad {
                let proven = [secret, previousSecret].contains { HandshakeCookies.validMac2(datagram, cookie: cookie(for: endpoint, secret: $0)) }
                guard proven else { return .cookieReply(reply(to: datagram, senderIndex: senderIndex, endpoint: endpoint)) }
            }
            return admitSource(endpoint.host, now: now) ? .proceed : .drop("too many handshake initiations from one address")
        }

        public var isUnderLoad: Bool { window.count > limits.loadThreshold || window.previous > limits.loadThreshold }

        private mutating func rotate(_ now: Int64) {
            guard let since = secretSince else { secretSince = now; return }
            guard now - since >= HandshakeCookies.secretLifetime else { return }
            previousSecret = secret
            secret = SecureRandom.bytes(32)
            secretSince = now
        }

        private func cookie(for endpoint: Endpoint, secret: [UInt8]) -> [UInt8] {
            HandshakeCookies.mac(Array(endpoint.description.utf8)[...], key: secret)
        }

        private func reply(to datagram: [UInt8], senderIndex: UInt32, endpoint: Endpoint) -> [UInt8] {
            let nonce = SecureRandom.bytes(HandshakeCookies.nonceBytes)
            guard let key = try? AEADKey(.chacha20poly1305, bytes: HandshakeCookies.cookieKey(responder)),
                  let sealed = try? key.seal(cookie(for: endpoint, secret: secret), nonce: nonce, additionalData: HandshakeCookies.mac1(of: datagram))
            else { return [] }
            return TunnelFrame.cookieReply(receiverIndex: senderIndex, nonce: nonce, sealed: sealed).encoded
        }

        private mutating func admitSource(_ host: String, now: Int64) -> Bool {
            if sources[host] == nil, sources.count >= limits.maxSources {
                // Forget sources whose bucket is full again: they lose nothing.
                sources = sources.filter { !$0.value.isFull(now: now) }
                if sources.count >= limits.maxSources { return false }
            }
            return sources[host, default: TokenBucket(burst: limits.perSourceBurst, perSecond: limits.perSourcePerSecond)].take(now: now)
        }
    }
}
