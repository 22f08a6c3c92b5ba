internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import PilotCore
internal import PilotRegistry

/// A small read-only HTTP server (NIOHTTP1) for status pages and JSON.
/// It answers GET only, from a handler run on the server's event loop.
enum StatusPage {
    struct Response: Sendable {
        var status: Int
        var contentType: String
        var body: String
    }

    static func start(
        group: any EventLoopGroup, at endpoint: Endpoint, handler: @escaping @Sendable (String) -> Response
    ) async throws -> any Channel {
        try await start(group: group, at: endpoint) { path, _ in handler(path) }
    }

    /// The handler gets the path and the query's decoded parameters, in order.
    static func start(
        group: any EventLoopGroup, at endpoint: Endpoint, handler: @escaping @Sendable (String, [(String, String)]) -> Response
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(handler: handler))
                }
            }
            .bind(host: endpoint.host, port: Int(endpoint.port)).get()
    }

    final class HTTPHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let handler: @Sendable (String, [(String, String)]) -> Response
        var request: HTTPRequestHead?
        /// A POSTed form (Grafana's Prometheus data source POSTs its queries), bounded.
        var body: [UInt8] = []
        var bodyTooLarge = false
        static let maxBody = 64 << 10

        init(handler: @escaping @Sendable (String, [(String, String)]) -> Response) { self.handler = handler }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                request = head
                body = []
                bodyTooLarge = false
            case .body(let part):
                if body.count + part.readableBytes > Self.maxBody { bodyTooLarge = true } else { body += part.readableBytesView }
            case .end:
                guard let head = request else { return }
                let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                let path = String(parts.first ?? "/")
                var query = parts.count > 1 ? StatusPage.parameters(String(parts[1])) : []
                let form = head.headers.first(name: "Content-Type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
                if head.method == .POST, form, !bodyTooLarge { query += StatusPage.parameters(String(decoding: body, as: UTF8.self)) }
                let response = switch head.method {
                case .GET: handler(path, query)
                case .POST where bodyTooLarge: Response(status: 413, contentType: "text/plain", body: "the form is over \(Self.maxBody) bytes\n")
                case .POST where form || body.isEmpty: handler(path, query)
                case .POST: Response(status: 415, contentType: "text/plain", body: "POST a form (application/x-www-form-urlencoded)\n")
                default: Response(status: 405, contentType: "text/plain", body: "only GET and POST\n")
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: response.contentType)
                headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
                headers.add(name: "Cache-Control", value: "no-store")
                let status = HTTPResponseStatus(statusCode: response.status)
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
                let keepAlive = head.isKeepAlive
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if !keepAlive { context.close(promise: nil) }
                }
                request = nil
                body = []
            }
        }
    }

    /// The seed's basic fleet overview.
    static func html(_ views: [NodeView]) -> String {
        let online = views.filter { $0.presence == .online }.count
        var rows = ""
        for view in views {
            rows += "<tr class=\"\(view.presence.rawValue)\"><td>\(escape(view.record.address.description))</td><td>\(escape(view.record.hostname))</td>"
            rows += "<td>\(escape(view.record.tags.joined(separator: ", ")))</td><td>\(view.presence.rawValue)</td></tr>\n"
        }
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>pilot registry</title>
            <meta http-equiv="refresh" content="10">
            <style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}
            .online td:last-child{color:#080}.offline td:last-child{color:#c00}.unknown td:last-child{color:#888}</style>
            </head><body><h1>pilot registry</h1><p>\(views.count) nodes, \(online) online</p>
            <table><tr><th>address</th><th>hostname</th><th>tags</th><th>presence</th></tr>
            \(rows)</table><p><a href="/api/nodes">/api/nodes</a></p></body></html>
            """
    }

    /// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")] (`+` is a space).
    static func parameters(_ query: String) -> [(String, String)] {
        query.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (percentDecode(String(kv[0])), kv.count > 1 ? percentDecode(String(kv[1])) : "")
        }
    }

    static func percentDecode(_ text: String) -> String { PercentEncoding.decode(text, plusIsSpace: true).text }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
