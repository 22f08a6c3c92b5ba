import PilotCore
import Testing

/// The series names and labels are what the store's files, `/metrics` and
/// remote write hold, so these tests spell every one out: a renamed field,
/// a label added, dropped or moved fails them.
@Suite struct SampleExtractionTests {
    /// `metric{name=value,...} value @ms`, labels in the order given.
    func rendered(_ samples: [Sample]) -> [String] {
        samples.map { sample in
            "\(sample.metric){\(sample.labels.map { "\($0.0)=\($0.1)" }.joined(separator: ","))} \(JSONValue.format(sample.value)) @\(sample.timestamp)"
        }
    }

    func extract(_ topic: String, _ json: String, receivedAt: Int64 = 5) throws -> [String] {
        guard case .object(let payload) = try JSONValue.parse(json) else { throw ParseError("payload", json, "not a JSON object") }
        return rendered(Sample.extract(topic: try Topic(topic), payload: payload, receivedAt: receivedAt))
    }

    @Test func cpuIsOneSeriesPerTopLevelNumber() throws {
        let json = #"{"host":"web-01","cpu_pct":42.1,"load":0.52,"cores":4,"user_pct":30.5,"system_pct":8.2,"iowait_pct":1.4,"steal_pct":0,"ts":1764100000}"#
        #expect(try extract("metrics/cpu/web-01", json) == [
            "cpu_pct{host=web-01} 42.1 @1764100000000", "load{host=web-01} 0.52 @1764100000000", "cores{host=web-01} 4 @1764100000000",
            "user_pct{host=web-01} 30.5 @1764100000000", "system_pct{host=web-01} 8.2 @1764100000000",
            "iowait_pct{host=web-01} 1.4 @1764100000000", "steal_pct{host=web-01} 0 @1764100000000",
        ])
    }

    @Test func diskIsLabelledByMountNotDeviceAndTheRootIsOneSeries() throws {
        let json = #"""
            {"host":"db-01","disk_pct":50,"mounts":[
            {"mount":"/","device":"/dev/vda1","fstype":"ext4","disk_pct":50,"used_bytes":5000,"total_bytes":10000,"inodes_pct":7.5,"read_only":false},
            {"mount":"/var","device":"/dev/vdb1","fstype":"xfs","disk_pct":97,"used_bytes":9700,"total_bytes":10000,"inodes_pct":3,"read_only":true}],
            "ts":1764100030}
            """#
        #expect(try extract("metrics/disk/db-01", json) == [
            "disk_pct{host=db-01,mount=/} 50 @1764100030000", "used_bytes{host=db-01,mount=/} 5000 @1764100030000",
            "total_bytes{host=db-01,mount=/} 10000 @1764100030000", "inodes_pct{host=db-01,mount=/} 7.5 @1764100030000",
            "disk_pct{host=db-01,mount=/var} 97 @1764100030000", "used_bytes{host=db-01,mount=/var} 9700 @1764100030000",
            "total_bytes{host=db-01,mount=/var} 10000 @1764100030000", "inodes_pct{host=db-01,mount=/var} 3 @1764100030000",
        ])
    }

    @Test func netIsLabelledByInterfaceAndDiskIOByDevice() throws {
        let net = #"""
            {"host":"web-01","interfaces":[{"iface":"eth0","rx_bytes_ps":1200.5,"tx_bytes_ps":800,"rx_packets_ps":10,"tx_packets_ps":9,
            "rx_errors":0,"tx_errors":1,"rx_dropped":2,"tx_dropped":0}],"ts":1764100060}
            """#
        #expect(try extract("metrics/net/web-01", net) == [
            "rx_bytes_ps{host=web-01,iface=eth0} 1200.5 @1764100060000", "tx_bytes_ps{host=web-01,iface=eth0} 800 @1764100060000",
            "rx_packets_ps{host=web-01,iface=eth0} 10 @1764100060000", "tx_packets_ps{host=web-01,iface=eth0} 9 @1764100060000",
            "rx_errors{host=web-01,iface=eth0} 0 @1764100060000", "tx_errors{host=web-01,iface=eth0} 1 @1764100060000",
            "rx_dropped{host=web-01,iface=eth0} 2 @1764100060000", "tx_dropped{host=web-01,iface=eth0} 0 @1764100060000",
        ])
        let diskio = #"{"host":"web-01","devices":[{"device":"vda","read_bytes_ps":4096,"write_bytes_ps":512,"util_pct":3.2}],"ts":1764100060}"#
        #expect(try extract("metrics/io/web-01", diskio) == [
            "read_bytes_ps{host=web-01,device=vda} 4096 @1764100060000", "write_bytes_ps{host=web-01,device=vda} 512 @1764100060000",
            "util_pct{host=web-01,device=vda} 3.2 @1764100060000",
        ])
    }

    @Test func aHealthCheckIsItsStateFirstThenItsNumbersLabelledByTheCheck() throws {
        let ok = #"{"host":"web-01","check":"webapp","kind":"http","status":"ok","ok":true,"latency_ms":12.5,"message":"200 OK","ts":1764100090}"#
        #expect(try extract("health/webapp/web-01", ok) == [
            "check_ok{host=web-01,check=webapp} 1 @1764100090000", "latency_ms{host=web-01,check=webapp} 12.5 @1764100090000",
        ])
        let down = #"{"host":"web-01","check":"webapp","kind":"http","status":"critical","ok":false,"message":"refused","ts":1764100120}"#
        #expect(try extract("health/webapp/web-01", down) == ["check_ok{host=web-01,check=webapp} 0 @1764100120000"])
    }

    @Test func theHostAndTheCheckAreTheTopicsNotThePayloads() throws {
        #expect(try extract("metrics/cpu/web-02", #"{"host":"spoofed","cpu_pct":1,"ts":1}"#) == ["cpu_pct{host=web-02} 1 @1000"])
        #expect(try extract("health/db/web-02", #"{"check":"other","status":"ok","ts":1}"#) == ["check_ok{host=web-02,check=db} 1 @1000"])
        #expect(try extract("metrics/cpu", #"{"cpu_pct":1,"ts":1}"#).isEmpty)
    }

    @Test func tsIsTheTimeNeverASeriesAndWithoutItTheTimeOfArrival() throws {
        #expect(try extract("metrics/x/h", #"{"a":1,"list":[{"mount":"/","ts":3,"b":2}]}"#, receivedAt: 7) == ["b{host=h,mount=/} 2 @7", "a{host=h} 1 @7"])
        #expect(try extract("metrics/x/h", #"{"a":1,"ts":1.5}"#, receivedAt: 7) == ["a{host=h} 1 @7"])
        // Too far out to be milliseconds: the time of arrival, not a trap.
        #expect(try extract("metrics/x/h", #"{"a":1,"ts":9000000000000000000}"#, receivedAt: 7) == ["a{host=h} 1 @7"])
    }

    @Test func samplesComeFromTopLevelNumbersAndLabelledLists() {
        let payload = JSONObject([
            ("host", .string("db-01")), ("disk_pct", .number(50)),
            ("mounts", .array([.object(JSONObject([("mount", .string("/")), ("disk_pct", .number(50))])),
                               .object(JSONObject([("mount", .string("/var")), ("disk_pct", .number(97)), ("inodes_pct", .number(3))]))])),
            ("ts", .number(1)),
        ])
        let samples = Sample.extract(host: "db-01", payload: payload, receivedAt: 0)
        #expect(samples.filter { $0.metric == "disk_pct" }.count == 2) // the lists', not the top-level copy as well
        #expect(samples.contains { $0.metric == "disk_pct" && $0.labels.last?.1 == "/var" && $0.value == 97 })
        #expect(!samples.contains { $0.metric == "ts" })
    }

    @Test func onlyFiniteNumbersAndEntriesWithANameAreSeries() throws {
        let json = #"""
            {"up":true,"name":"x","n":null,"list":[{"fstype":"ext4","disk_pct":1},{"device":"sda","mount":7,"util_pct":2},"text",3],"nested":{"a":1}}
            """#
        #expect(try extract("metrics/x/h", json) == ["mount{host=h,device=sda} 7 @5", "util_pct{host=h,device=sda} 2 @5"])
        let infinite = JSONObject([("a", .number(.infinity)), ("b", .number(.nan)), ("c", .number(-0.5))])
        #expect(Sample.extract(host: "h", payload: infinite, receivedAt: 1) == [Sample(metric: "c", labels: [("host", "h")], value: -0.5, timestamp: 1)])
    }
}
