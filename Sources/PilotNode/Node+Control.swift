internal import PilotCore
internal import PilotCrypto
internal import PilotRegistry

/// The control requests every node answers itself.
extension Node {
    func registerNodeRequests(_ requests: inout ControlRequests) {
        requests.answer(StatusRequest.self) { [unowned self] _ in await status() }
        requests.answer(PeersRequest.self) { [unowned self] request in
            guard let registry else { throw NodeError("this node has no registry configured (pilot init --registry HOST:PORT)") }
            return JSONObject([("nodes", .array(try await registry.search(request.search, onlineOnly: request.onlineOnly)))])
        }
        requests.answer(LookupRequest.self) { [unowned self] request in
            var body = JSONObject()
            if let hostname = request.hostname { body["hostname"] = .string(hostname) }
            if let address = request.address { body["address"] = .string(address) }
            return try await forward(.lookup, body)
        }
        requests.answer(PingRequest.self) { [unowned self] request in try await ping(request) }
        requests.answer(TrustRequest.self) { [unowned self] request in try await trust(request) }
        requests.answer(SetTagsRequest.self) { [unowned self] request in
            guard let registry else { throw NodeError("this node has no registry configured") }
            let tags = try await registry.setTags(request.tags)
            persistTags(tags.filter { $0 != Self.hubTag || !options.announcesHub })
            return JSONObject([("tags", .array(tags.map { .string($0) }))])
        }
        requests.answer(HubRequest.self) { [unowned self] _ in
            JSONObject([("hub", .string(try await hub())), ("configured", .bool(options.hub != nil))])
        }
    }

    private func trust(_ request: TrustRequest) async throws -> JSONObject {
        guard let trust else { throw NodeError("the trust service is not running") }
        func entries(_ table: [PublicKey: TrustBook.Entry]) -> JSONValue {
            .array(table.values.sorted { $0.hostname < $1.hostname }.map { entry in
                .object(JSONObject([("hostname", .string(entry.hostname)), ("key", .string(entry.key.fingerprint)),
                                    ("justification", .string(entry.justification)), ("since", .number(Double(entry.since)))]))
            })
        }
        switch request.action {
        case .handshake:
            let status = try await trust.handshake(host: request.host, justification: request.justification)
            return JSONObject([("status", .string(status))])
        case .approve:
            let entry = try await trust.approve(request.host, publish: request.publish)
            return JSONObject([("hostname", .string(entry.hostname)), ("publish", .array(entry.publish.map { .string($0) }))])
        case .reject:
            return JSONObject([("hostname", .string(try await trust.reject(request.host).hostname))])
        case .untrust:
            return JSONObject([("hostname", .string(try await trust.untrust(request.host).hostname))])
        case .pending:
            let book = await trust.snapshot()
            return JSONObject([("incoming", entries(book.incoming)), ("outgoing", entries(book.outgoing))])
        case .trust:
            return JSONObject([("trusted", entries(await trust.snapshot().trusted))])
        }
    }

    /// One echo round trip to a node named by hostname or address, or a
    /// number of echoes over a reliable stream.
    private func ping(_ request: PingRequest) async throws -> JSONObject {
        guard let registry else { throw NodeError("this node has no registry configured, so it cannot find peers") }
        let view = try await registry.lookup(request.host)
        let candidates = view.record.endpoints.compactMap { try? Endpoint(parsing: $0) }
        guard !candidates.isEmpty else { throw NodeError("\(view.record.hostname) has published no tunnel endpoint") }
        var reply = JSONObject([("hostname", .string(view.record.hostname)), ("address", .string(view.record.address.description))])
        if let count = request.streamCount {
            let elapsed = try await tunnels.streamEcho(view.record.publicKey, candidates: candidates, count: count)
            reply["echoed"] = .number(Double(count))
            reply["elapsed_us"] = .number(Double(elapsed))
        } else {
            reply["rtt_us"] = .number(Double(try await tunnels.ping(view.record.publicKey, candidates: candidates)))
        }
        reply["path"] = await tunnels.path(to: view.record.publicKey).map { .string($0.description) } ?? .null
        return reply
    }

    private func forward(_ operation: RegistryOperation, _ body: JSONObject) async throws -> JSONObject {
        guard let registry else { throw NodeError("this node has no registry configured (pilot init --registry HOST:PORT)") }
        return try await registry.request(operation, body)
    }

    /// Tags set at run time survive a restart: they replace the `--tag` lines of the config.
    private func persistTags(_ tags: [String]) {
        do {
            var config = ConfigFile(path: options.configPath)
            if LocalFile.exists(options.configPath) {
                config = try ConfigFile(parsing: LocalFile.readText(options.configPath, maxBytes: ConfigFile.maxBytes), path: options.configPath)
            }
            config.setAll("--tag", tags)
            try LocalFile.writeAtomically(options.configPath, Array(config.rendered(header: ConfigFile.nodeHeader).utf8), mode: 0o600)
        } catch {
            logger.error("cannot save tags to the config", metadata: ["error": "\(error)"])
        }
    }
}
