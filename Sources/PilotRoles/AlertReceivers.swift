internal import AsyncHTTPClient
internal import NIOCore
internal import NIOHTTP1
public import PilotAlerts
public import PilotCore

/// A receiver ready to send: its spec with every secret read (at start,
/// so an unreadable file stops the router then, not at 3 a.m.).
public struct ResolvedReceiver: Sendable {
    public var spec: ReceiverSpec
    /// The target with its secret read: a URL, a routing key, an SMTP URL, a command.
    var target: String
    /// Secret options (`password`, `bearer`) read.
    var secrets: [String: String]

    public init(_ spec: ReceiverSpec, environment: (String) -> String?) throws(ParseError) {
        self.spec = spec
        let read: (String) throws -> String = { path in try LocalFile.readText(path, maxBytes: 64 << 10) }
        func resolved(_ source: SecretSource, _ what: String) throws(ParseError) -> String {
            do { return try source.resolve(environment: environment, readFile: read) } catch {
                throw ParseError("receiver", "\(spec.kind.rawValue):\(spec.name)", "\(what): \(error.reason) (\(source))")
            }
        }
        target = try resolved(spec.target, "its target")
        secrets = [:]
        for key in ReceiverSpec.secretOptions { if let text = spec.options[key] { secrets[key] = try resolved(SecretSource(text), key) } }
        // A target read from a file or the environment is checked now.
        switch spec.kind {
        case .slack, .webhook, .alertmanager: _ = try HTTPURL(target, what: "\(spec.kind.rawValue):\(spec.name) URL")
        case .pagerduty, .email, .exec: break
        }
    }
}

/// Sends one notification to one receiver and says how it went. The
/// notification's id travels with it (`X-Pilot-Notification-Id`, the
/// webhook's `groupKey` stays Alertmanager's) so a receiver can discard a
/// delivery it already had.
struct AlertSender: Sendable {
    let receiver: ResolvedReceiver
    let context: FormatContext
    let client: HTTPClient
    let group: any EventLoopGroup
    var spec: ReceiverSpec { receiver.spec }

    /// `progress` parts are already delivered (PagerDuty sends one event per
    /// alert); the answer says how many are now, for the outbox to keep.
    func send(_ notification: PilotAlerts.Notification, progress: Int, now: Int64) async -> (DeliveryLane.Outcome, progress: Int, answer: String) {
        switch spec.kind {
        case .webhook:
            var headers: [(String, String)] = []
            if let bearer = receiver.secrets["bearer"] { headers.append(("Authorization", "Bearer " + bearer)) }
            let maxAlerts = spec.options["max_alerts"].flatMap { Int($0) } ?? 0
            return await post(receiver.target, Formats.webhook(notification, context: context, maxAlerts: maxAlerts), id: notification.id, headers: headers)
        case .slack:
            return await post(receiver.target, Formats.slack(notification, context: context, channel: spec.options["channel"]), id: notification.id)
        case .alertmanager:
            let base = receiver.target.hasSuffix("/") ? String(receiver.target.dropLast()) : receiver.target
            let body = Formats.alertmanagerAlerts(notification.alerts, context: context, now: now, resendSeconds: spec.duration("resend", default: 60))
            return await post(base + "/api/v2/alerts", body, id: notification.id)
        case .pagerduty:
            let url = spec.options["url"] ?? "https://events.pagerduty.com/v2/enqueue"
            let events = Formats.pagerDuty(notification, routingKey: receiver.target, context: context, severityOverride: spec.options["severity"])
            var done = progress
            var last = ""
            while done < events.count {
                let (outcome, _, answer) = await post(url, events[done], id: notification.id)
                guard outcome == .delivered else { return (outcome, done, answer) }
                last = answer
                done += 1
            }
            return (.delivered, done, last)
        case .email:
            return await email(notification)
        case .exec:
            let arguments = [receiver.target] + (spec.options["arg"].map { $0.split(separator: "\u{1F}").map(String.init) } ?? [])
            let result = await CommandRunner.run(arguments, stdin: Formats.execInput(notification, context: context),
                                                 timeoutSeconds: Double(spec.duration("timeout", default: 10)))
            let output = String(result.output.suffix(300))
            if result.exitCode == 0 { return (.delivered, progress, "exit 0" + (output.isEmpty ? "" : ": " + output)) }
            let why = result.timedOut ? "timed out after \(spec.duration("timeout", default: 10))s" : result.exitCode.map { "exit \($0)" } ?? "killed"
            return (.failed(why + (output.isEmpty ? "" : ": " + output)), progress, why)
        }
    }

    private func email(_ notification: PilotAlerts.Notification) async -> (DeliveryLane.Outcome, progress: Int, answer: String) {
        let to = (spec.options["to"] ?? "").split(separator: ",").map(String.init)
        let from = spec.options["from"] ?? "pilot@\(context.sender)"
        let message = Array(Formats.emailMessage(notification, context: context, from: from, to: to).utf8)
        do {
            if receiver.target.hasPrefix("/") {
                try await SMTPSender.sendmail(path: receiver.target, message: message, timeoutSeconds: Double(spec.duration("timeout", default: 30)))
                return (.delivered, 0, "sendmail exit 0")
            }
            let server = try smtpServer()
            let answer = try await SMTPSender.send(message: message, from: from, to: to, server: server, group: group)
            return (.delivered, 0, answer)
        } catch {
            return (error.permanent ? .refused(error.description) : .failed(error.description), 0, error.description)
        }
    }

    private func smtpServer() throws(DeliveryFailure) -> SMTPServer {
        let secure = receiver.target.hasPrefix("smtps://")
        let rest = receiver.target.dropFirst(secure ? 8 : 7)
        var authority = rest.prefix { $0 != "/" }
        var user = spec.options["user"]
        if let at = authority.lastIndex(of: "@") {
            user = user ?? String(authority[..<at])
            authority = authority[authority.index(after: at)...]
        }
        var host = String(authority), port = secure ? 465 : 587
        if let colon = authority.lastIndex(of: ":"), let number = Int(authority[authority.index(after: colon)...]) {
            host = String(authority[..<colon])
            port = number
        }
        guard !host.isEmpty else { throw DeliveryFailure("the SMTP URL names no host", permanent: true) }
        let security: SMTPServer.Security = secure ? .tls : spec.options["tls"] == "none" ? .none : spec.options["tls"] == "tls" ? .tls : .starttls
        let auth: SMTPServer.AuthMechanism? = spec.options["auth"] == "login" ? .login : spec.options["auth"] == "plain" ? .plain : nil
        return SMTPServer(host: host, port: port, security: security, user: user, password: receiver.secrets["password"], auth: auth,
                          caFile: spec.options["ca"], insecure: spec.options["insecure"] == "true",
                          timeoutSeconds: Double(spec.duration("timeout", default: 30)))
    }

    private func post(_ url: String, _ body: JSONValue, id: String, headers: [(String, String)] = []) async -> (DeliveryLane.Outcome, progress: Int, answer: String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "pilot-alert-router")
        request.headers.add(name: "X-Pilot-Notification-Id", value: id)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body.description))
        do {
            let response = try await client.execute(request, timeout: .seconds(15))
            var text: [UInt8] = []
            for try await part in response.body where text.count < 512 { text += part.readableBytesView.prefix(512 - text.count) }
            let answer = String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: " ")
            let outcome = DeliveryLane.outcome(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"), body: answer)
            return (outcome, 0, "HTTP \(response.status.code)" + (answer.isEmpty ? "" : " " + String(answer.prefix(200))))
        } catch {
            // The error may quote the URL, whose path can be a secret (Slack's).
            let text = "\(error)".replacingAll(receiver.target, with: HTTPURL.masked(receiver.target))
            return (.failed(text), 0, text)
        }
    }
}

extension String {
    func replacingAll(_ needle: String, with replacement: String) -> String {
        guard !needle.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: needle) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
