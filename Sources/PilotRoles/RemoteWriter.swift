internal import AsyncHTTPClient
public import Logging
public import NIOCore
internal import PilotCrypto
internal import PilotRemoteWrite

/// Sends the store's remote-write outbox to a Prometheus remote-write
/// endpoint: one request in flight (so each series arrives in time order),
/// up to `batchSamples` samples per request, snappy-compressed protobuf,
/// retried with backoff until the endpoint takes it. Everything but the
/// HTTP call runs on the store's loop, which owns the outbox.
final class RemoteWriter: @unchecked Sendable {
    let target: RemoteWriteTarget
    let outbox: RemoteWriteOutbox
    let loop: any EventLoop
    let logger: Logger
    let batchSamples: Int
    /// How long samples may wait for a batch to fill.
    let flushDelay: TimeAmount
    private let client: HTTPClient
    private let authorization: String?
    private let headers: [(name: String, value: String)]
    private var retry = RemoteWriteRetry()
    private var inFlight = false
    private var pending: Scheduled<Void>?

    struct Statistics: Sendable {
        var sentSamples = 0, sentRequests = 0, refusedSamples = 0, failedAttempts = 0
        var lastError: String?
    }
    private(set) var statistics = Statistics()

    init(target: RemoteWriteTarget, headers: [(name: String, value: String)] = [], outbox: RemoteWriteOutbox, loop: any EventLoop, group: any EventLoopGroup, batchSamples: Int = 2_000,
         flushDelay: TimeAmount = .seconds(1), logger: Logger) {
        self.target = target
        self.headers = headers
        self.outbox = outbox
        self.loop = loop
        self.logger = logger
        self.batchSamples = max(1, batchSamples)
        self.flushDelay = flushDelay
        client = HTTPClient(eventLoopGroup: group)
        authorization = target.user.map { "Basic " + Base64.encode(Array("\($0):\(target.password ?? "")".utf8)) }
    }

    /// On the loop, after the outbox grew (or at start, for a backlog).
    func queued() {
        guard !inFlight, pending == nil, !outbox.isEmpty else { return }
        if outbox.statistics.queuedSamples >= batchSamples {
            send()
        } else {
            pending = loop.scheduleTask(in: flushDelay) { [self] in
                pending = nil
                send()
            }
        }
    }

    func shutdown() async {
        _ = try? await loop.submit { [self] in pending?.cancel(); pending = nil }.get()
        try? await client.shutdown()
    }

    private func send() {
        guard !inFlight else { return }
        let batch: RemoteWriteOutbox.Batch?
        do { batch = try outbox.peek(maxSamples: batchSamples) } catch {
            logger.error("cannot read the remote-write backlog", metadata: ["error": "\(error)"])
            return
        }
        guard let batch else { return }
        inFlight = true
        let body = Snappy.compress(batch.body)
        Task { [self] in
            let (outcome, message) = await post(body)
            loop.execute { self.finished(batch, outcome, message) }
        }
    }

    private func finished(_ batch: RemoteWriteOutbox.Batch, _ outcome: RemoteWriteRetry.Outcome, _ message: String) {
        inFlight = false
        let decision = retry.record(outcome)
        switch decision {
        case .sent, .drop:
            do { try outbox.remove(batch) } catch {
                logger.error("cannot update the remote-write backlog", metadata: ["error": "\(error)"])
            }
            if decision == .sent {
                if statistics.failedAttempts > 0 && statistics.lastError != nil {
                    logger.notice("remote write resumed", metadata: ["url": "\(target.display)", "queued": "\(outbox.statistics.queuedSamples)"])
                }
                statistics.lastError = nil
                statistics.sentSamples += batch.samples
                statistics.sentRequests += 1
            } else {
                statistics.refusedSamples += batch.samples
                logger.error("the remote-write endpoint refused a batch; it is dropped", metadata: [
                    "url": "\(target.display)", "samples": "\(batch.samples)", "answer": "\(message)",
                ])
            }
            // What queued while this was in flight has waited long enough.
            if !outbox.isEmpty { send() }
        case .retry(let after):
            statistics.failedAttempts += 1
            if statistics.lastError == nil || retry.attempts % 20 == 0 {
                logger.warning("remote write failed; retrying", metadata: [
                    "url": "\(target.display)", "error": "\(message)", "retry_in_ms": "\(after)", "queued": "\(outbox.statistics.queuedSamples)",
                ])
            }
            statistics.lastError = message
            pending = loop.scheduleTask(in: .milliseconds(after)) { [self] in
                pending = nil
                send()
            }
        }
    }

    private func post(_ body: [UInt8]) async -> (RemoteWriteRetry.Outcome, String) {
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        request.headers.add(name: "Content-Encoding", value: "snappy")
        request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        request.headers.add(name: "X-Prometheus-Remote-Write-Version", value: "0.1.0")
        request.headers.add(name: "User-Agent", value: "pilot-store")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        for header in headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            var text: [UInt8] = []
            for try await part in response.body where text.count < 512 { text += part.readableBytesView.prefix(512 - text.count) }
            let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int64.init).map { $0 * 1000 }
            let answer = "HTTP \(response.status.code) " + String(decoding: text, as: UTF8.self).trimmingTrailingNewlines
            return (.status(Int(response.status.code), retryAfter: retryAfter), answer)
        } catch {
            return (.transportError, "\(error)")
        }
    }
}

private extension String {
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last?.isNewline == true { text.removeLast() }
        return String(text)
    }
}
