internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL
internal import PilotCore
internal import PilotRegistry

/// A small HTTP server (NIOHTTP1, optionally behind TLS) for status pages,
/// JSON and the dashboard. A handler answers each request with a future,
/// so it may run on the server's loop or wait for something else; answers
/// go back in order per connection (NIO's pipelining handler).
enum StatusPage {
    struct Request: Sendable {
        var method: String
        var path: String
        /// The query's decoded parameters, then a POSTed form's, in order.
        var parameters: [(String, String)]
        /// Names in lower case.
        var headers: [(name: String, value: String)]
        func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
        func parameter(_ name: String) -> String? { parameters.last { $0.0 == name }?.1 }
    }

    /// Bytes that live as long as the process (the embedded dashboard).
    struct StaticBytes: @unchecked Sendable {
        let buffer: UnsafeRawBufferPointer
    }

    struct Response: Sendable {
        var status: Int
        var contentType: String
        var body: String
        /// Sent instead of `body` when set.
        var bytes: StaticBytes?
        var headers: [(String, String)] = []
        init(status: Int, contentType: String, body: String, headers: [(String, String)] = []) {
            (self.status, self.contentType, self.body, self.headers) = (status, contentType, body, headers)
        }
        init(status: Int, contentType: String, bytes: StaticBytes, headers: [(String, String)] = []) {
            (self.status, self.contentType, self.body, self.bytes, self.headers) = (status, contentType, "", bytes, headers)
        }
    }

    typealias Handler = @Sendable (Request, any EventLoop) -> EventLoopFuture<Response>

    static func start(
        group: any EventLoopGroup, at endpoint: Endpoint, handler: @escaping @Sendable (String) -> Response
    ) async throws -> any Channel {
        try await start(group: group, at: endpoint) { path, _ in handler(path) }
    }

    /// The handler gets the path and the query's decoded parameters, in order.
    static func start(
        group: any EventLoopGroup, at endpoint: Endpoint, handler: @escaping @Sendable (String, [(String, String)]) -> Response
    ) async throws -> any Channel {
        try await start(group: group, at: endpoint) { request, loop in loop.makeSucceededFuture(handler(request.path, request.parameters)) }
    }

    static func start(group: any EventLoopGroup, at endpoint: Endpoint, tls: NIOSSLContext? = nil, handler: @escaping Handler) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(handler: handler))
                }
            }
            .bind(host: endpoint.host, port: Int(endpoint.port)).get()
    }

    final class HTTPHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let handler: Handler
        var request: HTTPRequestHead?
        /// A POSTed form (Grafana's Prometheus data source POSTs its queries), bounded.
        var body: [UInt8] = []
        var bodyTooLarge = false
        static let maxBody = 64 << 10

        init(handler: @escaping Handler) { self.handler = handler }

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
                request = nil
                let answer = answer(head, loop: context.eventLoop)
                body = []
                answer.hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                    let response = (try? result.get()) ?? Response(status: 500, contentType: "text/plain", body: "internal error\n")
                    Self.write(response, for: head, context: context, handler: self)
                }
            }
        }

        private func answer(_ head: HTTPRequestHead, loop: any EventLoop) -> EventLoopFuture<Response> {
            let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            var parameters = parts.count > 1 ? StatusPage.parameters(String(parts[1])) : []
            let form = head.headers.first(name: "Content-Type")?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
            if head.method == .POST, form, !bodyTooLarge { parameters += StatusPage.parameters(String(decoding: body, as: UTF8.self)) }
            let request = Request(method: head.method.rawValue, path: String(parts.first ?? "/"), parameters: parameters,
                                  headers: head.headers.map { (name: $0.name.lowercased(), value: $0.value) })
            func refuse(_ status: Int, _ text: String) -> EventLoopFuture<Response> {
                loop.makeSucceededFuture(Response(status: status, contentType: "text/plain", body: text))
            }
            switch head.method {
            case .GET: return handler(request, loop)
            case .POST where bodyTooLarge: return refuse(413, "the form is over \(Self.maxBody) bytes\n")
            case .POST where form || body.isEmpty: return handler(request, loop)
            case .POST: return refuse(415, "POST a form (application/x-www-form-urlencoded)\n")
            default: return refuse(405, "only GET and POST\n")
            }
        }

        private static func write(_ response: Response, for head: HTTPRequestHead, context: ChannelHandlerContext, handler: HTTPHandler) {
            var buffer: ByteBuffer
            if let bytes = response.bytes {
                buffer = context.channel.allocator.buffer(capacity: bytes.buffer.count)
                buffer.writeBytes(bytes.buffer)
            } else {
                buffer = context.channel.allocator.buffer(string: response.body)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            if response.status != 304 { headers.add(name: "Content-Length", value: "\(buffer.readableBytes)") }
            if !response.headers.contains(where: { $0.0 == "Cache-Control" }) { headers.add(name: "Cache-Control", value: "no-store") }
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            let status = HTTPResponseStatus(statusCode: response.status)
            context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            if response.status != 304 { context.write(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(handler.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
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
