internal import Logging
internal import NIOCore
internal import NIOSSL
public import PilotCore
internal import PilotCrypto

/// Who may read and who may write over a role's HTTP server. On loopback
/// anyone who can connect reads, as before; on any other address the role
/// does not start without TLS and a token (DESIGN.md: nothing in clear
/// beyond the host). Writes need the admin token in the request's own
/// `Authorization` header, never a cookie, so another site cannot make a
/// signed-in browser write.
public struct HTTPAccess: Sendable {
    /// Reads: `Authorization: Bearer TOKEN` or the sign-in cookie.
    public var token: String?
    /// Writes (and reads): `Authorization: Bearer ADMIN_TOKEN`.
    public var adminToken: String?
    /// PEM files of the certificate (chain) and its key.
    public var tls: (certificate: String, key: String)?

    public init(token: String? = nil, adminToken: String? = nil, tls: (certificate: String, key: String)? = nil) {
        (self.token, self.adminToken, self.tls) = (token, adminToken, tls)
    }

    public static let cookie = "pilot_session"

    public enum Grant: Sendable, Equatable { case read, write }

    /// Refuses what would serve the fleet in clear, or to anyone, beyond
    /// this host; `flag` names the listening flag in the error, and
    /// `stateDirectory` where `pilot init` would have put a certificate.
    public func validate(_ endpoint: Endpoint, flag: String, stateDirectory: String? = nil) throws(ParseError) {
        guard !Self.isLoopback(endpoint.host) else { return }
        if tls == nil {
            let made = stateDirectory.map { ", or run 'pilot init --state-dir \($0)' to make \(SelfSignedCertificate.files(in: $0).certificate) and its key" } ?? ""
            throw ParseError(flag, endpoint.description, "is not a loopback address, so it needs TLS: give --tls-cert FILE and --tls-key FILE (an ECDSA P-256 certificate)\(made)")
        }
        if token == nil {
            throw ParseError(flag, endpoint.description, "is not a loopback address, so it needs a token: give --http-token @FILE")
        }
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// What a request may do: nil for nothing.
    func grant(_ request: StatusPage.Request) -> Grant? {
        let bearer = request.header("authorization").flatMap { value -> String? in
            let parts = value.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1].trimmingSpaces) : nil
        }
        if let adminToken, let bearer, Self.same(bearer, adminToken) { return .write }
        guard let token else { return .read }
        if let bearer, Self.same(bearer, token) { return .read }
        if let session = Self.cookie(request), Self.same(session, token) || adminToken.map({ Self.same(session, $0) }) == true { return .read }
        return nil
    }

    /// `handler` behind these rules, for a server with no pages of its own
    /// for signing in (the registry's view, the store's read API): 401
    /// without a token that reads; `closed` refuses everything with that
    /// reason (a join-token registry whose view has no token to ask for).
    func guarding(closed: String? = nil, _ handler: @escaping StatusPage.Handler) -> StatusPage.Handler {
        { request, loop in
            let refusal = closed ?? (grant(request) == nil ? "this needs a token: Authorization: Bearer TOKEN (--http-token)" : nil)
            guard let refusal else { return handler(request, loop) }
            let body = JSONValue.object(JSONObject([("status", .string("error")), ("error", .string(refusal))])).description + "\n"
            return loop.makeSucceededFuture(StatusPage.Response(status: 401, contentType: "application/json", body: body,
                                                                headers: [("WWW-Authenticate", "Bearer")]))
        }
    }

    /// Whether `candidate` is one of the tokens (the sign-in form).
    func accepts(_ candidate: String) -> Bool {
        [token, adminToken].contains { $0.map { Self.same(candidate, $0) } ?? false }
    }

    static func cookie(_ request: StatusPage.Request) -> String? {
        for header in request.headers where header.name == "cookie" {
            for pair in header.value.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingSpaces == cookie { return String(kv[1].trimmingSpaces) }
            }
        }
        return nil
    }

    static func same(_ a: String, _ b: String) -> Bool { ConstantTime.equal(Array(a.utf8), Array(b.utf8)) }

    /// The TLS server context, nil without TLS; errors name the file. The
    /// log says which certificate, with the fingerprint a client can pin.
    func serverContext(logger: Logger) throws -> NIOSSLContext? {
        guard let tls else { return nil }
        let chain: [NIOSSLCertificate], key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMFile(tls.certificate) } catch {
            throw ParseError("--tls-cert", tls.certificate, "is not a readable PEM certificate (\(error))")
        }
        do { key = try NIOSSLPrivateKey(file: tls.key, format: .pem) } catch {
            throw ParseError("--tls-key", tls.key, "is not a readable PEM private key (\(error))")
        }
        if let leaf = chain.first, let der = try? leaf.toDERBytes() {
            logger.info("HTTPS certificate", metadata: ["file": "\(tls.certificate)", "sha256": "\(SelfSignedCertificate.fingerprint(der))"])
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw ParseError("--tls-cert", tls.certificate, "does not go with --tls-key \(tls.key) (\(error))")
        }
    }
}

