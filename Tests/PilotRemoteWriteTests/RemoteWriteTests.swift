#if canImport(Glibc)
import Glibc
#endif
import PilotCore
import PilotRemoteWrite
import PilotSQLite
import PilotStore
import Testing

private func scratch() -> (directory: String, path: String) {
    var template = Array("/tmp/pilot-rw-test-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!
    let directory = String(cString: made)
    return (directory, directory + "/store.db")
}

private func cleanUp(_ directory: String) {
    for suffix in ["", "-wal", "-shm"] { unlink(directory + "/store.db" + suffix) }
    rmdir(directory)
}

extension Sample {
    /// A sample of a series named by the store's key (its labels sorted).
    init(key: SeriesStore.Key, timestamp: Int64, value: Double) {
        self.init(metric: key.metric, labels: key.labels.map { ($0.name, $0.value) }, value: value, timestamp: timestamp)
    }
}

@Suite struct SnappyTests {
    @Test func roundTripsRandomAndRepetitiveData() throws {
        var random = SplitMix64(state: 7)
        for length in [0, 1, 17, 4_096, 70_000] {
            let noise = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let text = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 7) }
            for input in [noise, text] {
                let compressed = Snappy.compress(input)
                #expect(try Snappy.decompress(compressed, maxLength: length) == input)
            }
            if length >= 4_096 { #expect(Snappy.compress(text).count < length / 10) }
        }
    }

    @Test func refusesGarbageAndBlocksOverTheLimit() {
        #expect(throws: RemoteWriteError.self) { try Snappy.decompress([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], maxLength: 1 << 20) }
        #expect(throws: RemoteWriteError.self) { try Snappy.decompress([0x05, 0x00, 0x61], maxLength: 100) }
        let big = Snappy.compress([UInt8](repeating: 1, count: 10_000))
        #expect(throws: RemoteWriteError("a snappy block of 10000 bytes is over the limit of 9999")) { try Snappy.decompress(big, maxLength: 9_999) }
    }
}

@Suite struct RemoteWriteRequestTests {
    let disk = SeriesStore.Key(metric: "disk_pct", labels: [("mount", "/var"), ("host", "db-01")])
    let cpu = SeriesStore.Key(metric: "cpu_pct", labels: [("host", "web-01")])

    @Test func encodesSeriesWithSortedLabelsAndSamplesInOrder() throws {
        let samples = [
            Sample(key: disk, timestamp: 60_000, value: 41.5),
            Sample(key: cpu, timestamp: 30_000, value: .nan),
            Sample(key: disk, timestamp: 30_000, value: -0.0),
            Sample(key: cpu, timestamp: 60_000, value: .infinity),
        ]
        let decoded = try RemoteWriteRequest.decode(try RemoteWriteRequest.encode(samples))
        #expect(decoded.count == 2)
        #expect(decoded[0].labels.map { "\($0.0)=\($0.1)" } == ["__name__=pilot_disk_pct", "host=db-01", "mount=/var"])
        #expect(decoded[0].samples.map(\.timestamp) == [30_000, 60_000])
        #expect(decoded[0].samples[0].value.bitPattern == (-0.0).bitPattern && decoded[0].samples[1].value == 41.5)
        #expect(decoded[1].labels.map { "\($0.0)=\($0.1)" } == ["__name__=pilot_cpu_pct", "host=web-01"])
        #expect(decoded[1].samples[0].value.bitPattern == Double.nan.bitPattern && decoded[1].samples[1].value == .infinity)
    }

    @Test func labelsInAnyOrderAreOneSeriesAsInTheStore() throws {
        let samples = [Sample(metric: "disk_pct", labels: [("host", "db-01"), ("mount", "/var")], value: 1, timestamp: 30_000),
                       Sample(metric: "disk_pct", labels: [("mount", "/var"), ("host", "db-01")], value: 2, timestamp: 60_000)]
        let decoded = try RemoteWriteRequest.decode(try RemoteWriteRequest.encode(samples))
        #expect(decoded.count == 1)
        #expect(decoded.first?.labels.map { "\($0.0)=\($0.1)" } == ["__name__=pilot_disk_pct", "host=db-01", "mount=/var"])
        #expect(decoded.first?.samples.map(\.value) == [1, 2])
    }

    @Test func aMessagesSeriesGoOutNamedAsInMetrics() throws {
        guard case .object(let payload) = try JSONValue.parse(#"{"host":"web-01","interfaces":[{"iface":"eth0","rx_bytes_ps":1200.5}],"ts":1764100000}"#) else { return }
        let samples = Sample.extract(topic: try Topic("metrics/net/web-01"), payload: payload, receivedAt: 0)
        let decoded = try RemoteWriteRequest.decode(try RemoteWriteRequest.encode(samples))
        #expect(decoded.map { $0.labels.map { "\($0.0)=\($0.1)" } } == [["__name__=pilot_rx_bytes_ps", "host=web-01", "iface=eth0"]])
        #expect(decoded.first?.samples.map(\.timestamp) == [1_764_100_000_000])
    }

    @Test func concatenatedRequestsAreOneRequest() throws {
        let first = try RemoteWriteRequest.encode([Sample(key: cpu, timestamp: 1_000, value: 1)])
        let second = try RemoteWriteRequest.encode([Sample(key: disk, timestamp: 2_000, value: 2),
                                                    Sample(key: cpu, timestamp: 3_000, value: 3)])
        let joined = try RemoteWriteRequest.decode(first + second)
        #expect(joined.map { $0.samples.map(\.timestamp) } == [[1_000], [2_000], [3_000]])
    }

    @Test func namesAreMadeValidForPrometheus() {
        let odd = SeriesStore.Key(metric: "net.rx-bytes", labels: [("9zone", "a b"), ("check", "http:80")])
        #expect(RemoteWriteRequest.labels(odd).map { "\($0.0)=\($0.1)" } == ["_9zone=a b", "__name__=pilot_net_rx_bytes", "check=http:80"])
    }

    @Test func garbageIsAnErrorNotACrash() {
        #expect(throws: RemoteWriteError.self) { try RemoteWriteRequest.decode([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) }
    }
}

@Suite struct RemoteWriteOutboxTests {
    let cpu = SeriesStore.Key(metric: "cpu_pct", labels: [("host", "web-01")])

    /// Equal-sized requests for equal-sized ranges (proto3 leaves out zeros).
    func request(_ timestamps: Range<Int64>) throws -> [UInt8] {
        try RemoteWriteRequest.encode(timestamps.map { Sample(key: cpu, timestamp: $0 + 1_000, value: 1.5) })
    }

    @Test func batchesOldestFirstWithinTheSampleLimitAndRemovesWhatWasSent() throws {
        let (directory, path) = scratch()
        defer { cleanUp(directory) }
        let connection = try SQLiteConnection(path: path)
        let outbox = try RemoteWriteOutbox(connection: connection, maxBytes: 1 << 20)
        #expect(try outbox.peek(maxSamples: 10) == nil)
        try outbox.enqueue(try request(0..<4), samples: 4)
        try outbox.enqueue(try request(4..<10), samples: 6)
        try outbox.enqueue(try request(10..<30), samples: 20)
        let first = try #require(try outbox.peek(maxSamples: 10))
        #expect(first.samples == 10)
        #expect(try RemoteWriteRequest.decode(first.body).flatMap { $0.samples.map(\.timestamp) } == Array(1_000..<1_010))
        try outbox.remove(first)
        // One row bigger than the limit still goes, alone.
        let second = try #require(try outbox.peek(maxSamples: 10))
        #expect(second.samples == 20)
        try outbox.remove(second)
        #expect(outbox.isEmpty && outbox.statistics.queuedSamples == 0 && outbox.statistics.queuedBytes == 0)
        #expect(try outbox.peek(maxSamples: 10) == nil)
    }

    @Test func aFullBacklogDropsItsOldestAndCountsThem() throws {
        let (directory, path) = scratch()
        defer { cleanUp(directory) }
        let connection = try SQLiteConnection(path: path)
        let one = try request(0..<10)
        let outbox = try RemoteWriteOutbox(connection: connection, maxBytes: one.count * 3)
        let batch = try { () throws -> RemoteWriteOutbox.Batch? in
            try outbox.enqueue(one, samples: 10)
            return try outbox.peek(maxSamples: 10)
        }()
        var dropped = 0
        for start in stride(from: Int64(10), to: 50, by: 10) { dropped += try outbox.enqueue(try request(start..<start + 10), samples: 10) }
        #expect(dropped == 20)
        #expect(outbox.statistics.droppedSamples == 20 && outbox.statistics.queuedSamples == 30)
        #expect(outbox.statistics.queuedBytes <= outbox.maxBytes)
        // A batch taken before the bound dropped it is not subtracted twice.
        try outbox.remove(try #require(batch))
        #expect(outbox.statistics.queuedSamples == 30)
        let next = try #require(try outbox.peek(maxSamples: 100))
        #expect(try RemoteWriteRequest.decode(next.body).flatMap { $0.samples.map(\.timestamp) } == Array(1_020..<1_050))
    }

    @Test func survivesReopeningAndCommitsOnlyWithTheSamples() throws {
        let (directory, path) = scratch()
        defer { cleanUp(directory) }
        do {
            let store = try SeriesStore(path: path)
            let outbox = try RemoteWriteOutbox(connection: store.connection, maxBytes: 1 << 20)
            let samples = (0..<5).map { Sample(key: cpu, timestamp: Int64($0) * 1_000, value: 1) }
            try store.append(samples) { fresh in try outbox.enqueue(try RemoteWriteRequest.encode(fresh), samples: fresh.count) }
            // Resent: nothing new, nothing queued.
            try store.append(samples) { fresh in try outbox.enqueue(try RemoteWriteRequest.encode(fresh), samples: fresh.count) }
            // A failure inside the transaction rolls back the samples and the queued request together.
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try store.append([Sample(key: cpu, timestamp: 9_000, value: 1)]) { fresh in
                    try outbox.enqueue(try RemoteWriteRequest.encode(fresh), samples: fresh.count)
                    throw Refused()
                }
            }
        }
        let store = try SeriesStore(path: path)
        let outbox = try RemoteWriteOutbox(connection: store.connection, maxBytes: 1 << 20)
        #expect(outbox.statistics.queuedSamples == 5)
        let batch = try #require(try outbox.peek(maxSamples: 100))
        #expect(try RemoteWriteRequest.decode(batch.body).flatMap { $0.samples.map(\.timestamp) } == [0, 1_000, 2_000, 3_000, 4_000])
        #expect(try store.samples(cpu, from: 0, to: 10_000).map(\.timestamp) == [0, 1_000, 2_000, 3_000, 4_000])
    }
}

@Suite struct RemoteWriteRetryTests {
    @Test func retriesWhatCanSucceedWithCappedBackoffAndDropsWhatCannot() {
        var retry = RemoteWriteRetry(minBackoff: 100, maxBackoff: 1_000)
        #expect(retry.record(.status(204)) == .sent)
        #expect(retry.record(.transportError) == .retry(after: 100))
        #expect(retry.record(.status(503)) == .retry(after: 200))
        #expect(retry.record(.status(500)) == .retry(after: 400))
        #expect(retry.record(.status(502)) == .retry(after: 800))
        #expect(retry.record(.status(504)) == .retry(after: 1_000))
        #expect(retry.record(.transportError) == .retry(after: 1_000))
        #expect(retry.attempts == 6)
        #expect(retry.record(.status(200)) == .sent)
        #expect(retry.attempts == 0)
        #expect(retry.record(.status(500)) == .retry(after: 100))
        // Retry-After is honoured, up to the cap.
        #expect(retry.record(.status(429, retryAfter: 700)) == .retry(after: 700))
        #expect(retry.record(.status(429, retryAfter: 60_000)) == .retry(after: 1_000))
        // A refusal for good drops the batch and starts afresh.
        #expect(retry.record(.status(400)) == .drop)
        #expect(retry.record(.status(404)) == .drop)
        #expect(retry.record(.status(503)) == .retry(after: 100))
        #expect(retry.record(.status(301)) == .drop)
    }
}

@Suite struct RemoteWriteTargetTests {
    @Test func acceptsHTTPAndHTTPSURLsAndTakesCredentialsOut() throws {
        #expect(try RemoteWriteTarget("http://127.0.0.1:9090/api/v1/write").url == "http://127.0.0.1:9090/api/v1/write")
        #expect(try RemoteWriteTarget("HTTPS://mimir.example").url == "https://mimir.example/")
        let secret = try RemoteWriteTarget("https://tenant-1:p%40ss:w@mimir.example:443/api/v1/push")
        #expect(secret.url == "https://mimir.example:443/api/v1/push" && secret.display == secret.url)
        #expect(secret.user == "tenant-1" && secret.password == "p@ss:w")
    }

    @Test func refusesWhatIsNotAnEndpointWithoutEchoingCredentials() {
        for text in ["", "localhost:9090", "ftp://host/x", "http://", "http:///path", "http://:9090/", "http://a b/", "http://host/a b"] {
            #expect(throws: ParseError.self, "\(text)") { try RemoteWriteTarget(text) }
        }
        do {
            _ = try RemoteWriteTarget("ftp://user:hunter2@host/")
            Issue.record("accepted ftp")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
        #expect(throws: ParseError.self) { try RemoteWriteTarget("http://user:bad%zz@host/") }
    }

    @Test func extraHeadersAreCheckedWithoutEchoingTheirValues() throws {
        #expect(try RemoteWriteTarget.header("X-Scope-OrgID: tenant-1") == ("X-Scope-OrgID", "tenant-1"))
        #expect(try RemoteWriteTarget.header("Authorization:Bearer abc.def") == ("Authorization", "Bearer abc.def"))
        for text in ["no colon", ": value", "Bad Name: x", "Content-Type: text/plain", "content-encoding: gzip", "X-Empty:   ",
                     "X-Split: a\r\nInjected: yes"] {
            #expect(throws: ParseError.self, "\(text)") { try RemoteWriteTarget.header(text) }
        }
        do {
            _ = try RemoteWriteTarget.header("X-Token: sec\u{7}ret-value")
            Issue.record("accepted a control character")
        } catch {
            #expect(!"\(error)".contains("ret-value"))
        }
    }
}
