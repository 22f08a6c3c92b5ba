internal import CDashboard
internal import NIOCore
internal import PilotAggregator
internal import PilotAlerts
public import PilotCore
internal import PilotNode

/// The aggregator's HTTP server: the dashboard at `/` (embedded files),
/// the fleet API of docs/API.md under `/api/v1/`, and the older
/// `/api/hosts`, `/api/alerts` and `/metrics`. What the fleet is comes from
/// this role; history and silences from the store and the alert router
/// when they run on this node, asked through the node's control requests.
extension AggregatorService {
    typealias Response = StatusPage.Response

    func serve(_ request: StatusPage.Request) -> EventLoopFuture<Response> {
        let path = request.path
        if path.hasPrefix("/assets/") || path == "/favicon.ico" { return loop.makeSucceededFuture(DashboardFiles.response(path, request)) }
        if path == "/login" { return loop.makeSucceededFuture(login(request)) }
        guard let grant = options.access.grant(request) else {
            let api = path.hasPrefix("/api/") || path == "/metrics"
            return loop.makeSucceededFuture(api ? Self.json(401, ["error": .string("this API needs a token: Authorization: Bearer TOKEN (--http-token)")])
                                                : Self.loginPage(status: 401, message: nil))
        }
        if request.method == "POST", path.hasPrefix("/api/v1/silences") {
            // 403, not 401: a reader who may not write is signed in already.
            guard grant == .write else {
                let reason = options.access.adminToken == nil ? "this dashboard is read-only: start the aggregator with --http-admin-token @FILE to write"
                                                              : "writing needs the admin token: Authorization: Bearer ADMIN_TOKEN"
                return loop.makeSucceededFuture(Self.json(403, ["error": .string(reason)]))
            }
            return loop.makeFutureWithTask { await self.silenceWrite(request) }
        }
        switch path {
        case "/api/v1/series":
            return loop.makeFutureWithTask { await self.series(request) }
        case "/api/v1/alerts":
            return loop.makeFutureWithTask { await self.alertsPage() }
        case let host where host.hasPrefix("/api/v1/hosts/"):
            let name = PercentEncoding.decode(String(host.dropFirst("/api/v1/hosts/".count)), plusIsSpace: false).text
            return loop.makeFutureWithTask { await self.hostPage(name) }
        default:
            return loop.submit { self.page(request) }
        }
    }

    /// What `/api/v1/…` says is available on this node.
    var features: JSONValue {
        .object(JSONObject([
            ("history", .bool(node.answers("history"))), ("silences", .bool(node.answers("silence-list"))),
            ("write", .bool(options.access.adminToken != nil)),
        ]))
    }

    /// On the loop: the answers made from this role's own state.
    private func page(_ request: StatusPage.Request) -> Response {
        let now = Self.now()
        switch request.path {
        case "/", "/index.html":
            return DashboardFiles.response("/assets/index.html", request)
        case "/api/v1/hosts":
            return hostsPage(now: now, since: request.parameter("since"), epoch: request.parameter("epoch"))
        case "/api/hosts":
            return .init(status: 200, contentType: "application/json", body: fleet.hostsJSON(now: now, downAfter: options.engine.hostDownAfter).description + "\n")
        case "/api/alerts":
            return .init(status: 200, contentType: "application/json", body: alertsJSON().description + "\n")
        case "/metrics":
            return .init(status: 200, contentType: "text/plain; version=0.0.4",
                         body: fleet.prometheus(now: now, downAfter: options.engine.hostDownAfter, firing: Array(engine.firing.values)))
        case "/table":
            return .init(status: 200, contentType: "text/plain", body: fleet.table(now: now) + "\n")
        default:
            return Self.json(404, ["error": .string("not found: the dashboard is at /, the API at /api/v1/hosts, /api/v1/hosts/NAME, /api/v1/series, /api/v1/alerts (docs/API.md), Prometheus at /metrics")])
        }
    }

    var firingByHost: [String: [Alert]] { Dictionary(grouping: engine.firing.values, by: \.host) }

    private func hostsPage(now: Int64, since: String?, epoch: String?) -> Response {
        // A client that knows this run's changes gets only the newer ones.
        let after = since.flatMap(UInt64.init).flatMap { $0 <= fleet.seq && epoch == "\(self.epoch)" ? $0 : nil }
        let firing = firingByHost
        let hosts = fleet.changed(after: after).map { entry in
            JSONValue.object(fleet.summary(entry.name, entry.host, now: now, firing: firing[entry.name] ?? [], rules: options.engine.rules, fullSpark: after == nil))
        }
        return Self.json(200, [
            "now": .number(Double(now)), "epoch": .number(Double(self.epoch)), "seq": .number(Double(fleet.seq)),
            "down_after": .number(Double(options.engine.hostDownAfter)), "features": features,
            "counts": fleet.counts(alerting: Set(firing.keys)), "full": .bool(after == nil), "hosts": .array(hosts),
        ])
    }

    private func hostPage(_ name: String) async -> Response {
        let found = try? await loop.submit { [self] () -> (JSONObject, JSONValue, JSONValue)? in
            guard let host = fleet.hosts[name] else { return nil }
            let now = Self.now()
            var summary = fleet.summary(name, host, now: now, firing: firingByHost[name] ?? [], rules: options.engine.rules, fullSpark: true)
            summary["latest"] = .object(JSONObject(host.latest.sorted { $0.key < $1.key }.map { ($0.key, .object($0.value)) }))
            summary["alert_history"] = .array(host.notices.reversed().map(JSONValue.object))
            return (summary, .number(Double(now)), fleet.counts(alerting: Set(engine.firing.values.map(\.host))))
        }.get()
        guard let (summary, now, counts) = found ?? nil else { return Self.json(404, ["error": .string("no host named '\(name)' has published to this aggregator")]) }
        var host = summary
        if node.answers("history") {
            let reply = await node.request("history", JSONObject([("host", .string(name))]))
            if reply["ok"] == .bool(true), let series = reply["series"] { host["series"] = series }
        }
        return Self.json(200, ["now": now, "features": features, "counts": counts, "host": .object(host)])
    }

    private func series(_ request: StatusPage.Request) async -> Response {
        guard node.answers("history") else {
            return Self.json(503, ["error": .string("no store runs on this aggregator's node, so there is no history (pilot up runs one)")])
        }
        guard let host = request.parameter("host"), !host.isEmpty else { return Self.json(400, ["error": .string("series needs host=NAME")]) }
        func seconds(_ name: String, _ fallback: Int64) -> Int64? {
            guard let text = request.parameter(name) else { return fallback }
            return Int64(text)
        }
        let now = Self.now()
        guard let to = seconds("to", now), let range = seconds("range", 3600), let from = seconds("from", to - range), let step = seconds("step", 0) else {
            return Self.json(400, ["error": .string("from, to, range and step are whole seconds")])
        }
        var fields = JSONObject([("host", .string(host)), ("from", .number(Double(from * 1000))), ("to", .number(Double(to * 1000))),
                                 ("step", .number(Double(step * 1000)))])
        if let metric = request.parameter("metric") { fields["metric"] = .string(metric) }
        let reply = await node.request("history", fields)
        guard reply["ok"] == .bool(true), let series = reply["series"] else {
            return Self.json(400, ["error": reply["error"] ?? .string("the store did not answer")])
        }
        return Self.json(200, ["host": .string(host), "from": .number(Double(from)), "to": .number(Double(to)), "step": .number(Double(step)), "series": series])
    }

    private func alertsPage() async -> Response {
        var list: [JSONValue]?
        if node.answers("silence-list"), case .array(let records)? = await node.request("silence-list")["silences"] { list = records }
        let silences = list.map { $0.compactMap { try? Silence(record: $0) } }
        let answer = try? await loop.submit { [self] () -> [String: JSONValue] in
            let now = Self.now()
            let firing = engine.firing.values.sorted { ($0.host, $0.metric, $0.fingerprint) < ($1.host, $1.metric, $1.fingerprint) }.map { alert -> JSONValue in
                var row = fleet.enriched(alert.notice(status: "firing", at: alert.lastSentAt), rules: options.engine.rules).payload
                row["since"] = .number(Double(alert.startsAt))
                if let silences, let event = try? AlertEvent(topic: "alerts/\(alert.metric)/\(alert.host)", payload: row) {
                    let tags = fleet.hosts[alert.host]?.tags ?? []
                    row["silenced"] = .bool(silences.contains { $0.isActive(at: now) && $0.matches(event, tags: tags) })
                }
                return .object(row)
            }
            return ["now": .number(Double(now)), "firing": .array(firing), "resolved": .array(fleet.resolved.reversed().map(JSONValue.object)),
                    "counts": fleet.counts(alerting: Set(engine.firing.values.map(\.host)))]
        }.get()
        guard var answer else { return Self.json(503, ["error": .string("the aggregator is stopping")]) }
        answer["features"] = features
        answer["silences"] = list.map(JSONValue.array) ?? .null
        return Self.json(200, answer)
    }

    private func silenceWrite(_ request: StatusPage.Request) async -> Response {
        guard node.answers("silence-add") else {
            return Self.json(503, ["error": .string("no alert router runs on this aggregator's node, so silences cannot be set here")])
        }
        let reply: JSONValue
        if request.path == "/api/v1/silences" {
            let matchers = (request.parameter("matchers") ?? "").split(separator: " ").map { JSONValue.string(String($0)) }
            guard !matchers.isEmpty else { return Self.json(400, ["error": .string("a silence needs matchers, e.g. host=web-01 metric=disk_pct")]) }
            let seconds: Int64
            do { seconds = try DurationText.seconds(request.parameter("duration") ?? "2h") } catch {
                return Self.json(400, ["error": .string("\(error)")])
            }
            reply = await node.request("silence-add", JSONObject([
                ("matchers", .array(matchers)), ("for_s", .number(Double(seconds))),
                ("comment", .string(request.parameter("comment") ?? "")), ("by", .string(request.parameter("created_by").flatMap { $0.isEmpty ? nil : $0 } ?? "dashboard")),
            ]))
        } else {
            let parts = request.path.split(separator: "/")
            guard parts.count == 5, parts[4] == "expire" else { return Self.json(404, ["error": .string("POST /api/v1/silences or /api/v1/silences/ID/expire")]) }
            reply = await node.request("silence-expire", JSONObject([("id", .string(String(parts[3])))]))
        }
        guard reply["ok"] == .bool(true) else { return Self.json(400, ["error": reply["error"] ?? .string("the alert router refused")]) }
        let id = request.path.split(separator: "/").dropFirst(3).first.map(String.init) ?? ""
        return Self.json(200, ["silence": reply["silence"] ?? .object(JSONObject([("id", .string(id))]))])
    }

    // MARK: Pages and files

    static func json(_ status: Int, _ members: [String: JSONValue]) -> Response {
        let body = JSONObject([("api", .number(1))] + members.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        return .init(status: status, contentType: "application/json", body: JSONValue.object(body).description + "\n", headers: securityHeaders)
    }

    static let securityHeaders = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]
    static let contentPolicy = ("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")

    private func login(_ request: StatusPage.Request) -> Response {
        guard request.method == "POST" else { return Self.loginPage(status: options.access.token == nil ? 200 : 401, message: nil) }
        guard let token = request.parameter("token"), options.access.accepts(token) else {
            return Self.loginPage(status: 401, message: "That token is not this dashboard's.")
        }
        let secure = options.access.tls != nil ? "; Secure" : ""
        return .init(status: 303, contentType: "text/plain", body: "signed in\n", headers: Self.securityHeaders + [
            ("Location", "/"), ("Set-Cookie", "\(HTTPAccess.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict\(secure)"),
        ])
    }

    static func loginPage(status: Int, message: String?) -> Response {
        let note = message.map { "<p class=\"login-error\">\(StatusPage.escape($0))</p>" } ?? ""
        let body = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>pilot: sign in</title><link rel="icon" href="/assets/icon.svg"><link rel="stylesheet" href="/assets/app.css"></head>
            <body class="login-page"><main class="login"><h1>pilot</h1><p>This dashboard needs its token (the file given to --http-token).</p>\(note)
            <form method="post" action="/login"><label for="token">Token</label> <input id="token" name="token" type="password" autocomplete="current-password" required>
            <button type="submit">Sign in</button></form></main></body></html>

            """
        return .init(status: status, contentType: "text/html; charset=utf-8", body: body, headers: securityHeaders + [contentPolicy])
    }
}
