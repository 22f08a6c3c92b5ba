public import PilotCore

/// What one reading of the host gives: the kernel's texts and the usage of
/// every real filesystem (statvfs). Gathered by `HostReader`.
public struct HostSnapshot: Sendable {
    public var stat: String?
    public var loadavg: String?
    public var meminfo: String?
    public var uptime: String?
    public var netDev: String?
    public var diskstats: String?
    public var filesystems: [FilesystemUsage] = []
    public init() {}
}

public struct FilesystemUsage: Equatable, Sendable {
    public var mount: Mount
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    /// Free for unprivileged users (what df counts as available).
    public var availableBytes: UInt64
    public var inodes: UInt64
    public var inodesFree: UInt64

    public init(mount: Mount, totalBytes: UInt64, freeBytes: UInt64, availableBytes: UInt64, inodes: UInt64, inodesFree: UInt64) {
        self.mount = mount
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.availableBytes = availableBytes
        self.inodes = inodes
        self.inodesFree = inodesFree
    }

    /// As df computes it: used / (used + available), so the blocks reserved
    /// for root do not hide a full disk.
    public var usedPercent: Double {
        let used = totalBytes > freeBytes ? totalBytes - freeBytes : 0
        let denominator = used + availableBytes
        return denominator == 0 ? 0 : Double(used) / Double(denominator) * 100
    }

    public var inodesUsedPercent: Double {
        inodes == 0 ? 0 : Double(inodes - min(inodes, inodesFree)) / Double(inodes) * 100
    }
}

/// One message the agent publishes.
public struct AgentMessage: Equatable, Sendable {
    public var topic: String
    public var payload: JSONObject
    public var json: String { JSONValue.object(payload).description }

    /// The message with the given fields set, at the top level and in list
    /// entries (every mount's disk_pct too).
    public func overriding(_ values: [String: Double]) -> AgentMessage {
        var payload = self.payload
        for (field, value) in values where payload[field] != nil { payload[field] = .number(value) }
        for (key, member) in self.payload {
            guard case .array(let items) = member else { continue }
            payload[key] = .array(items.map { item in
                guard case .object(var entry) = item else { return item }
                for (field, value) in values where entry[field] != nil { entry[field] = .number(value) }
                return .object(entry)
            })
        }
        return AgentMessage(topic: topic, payload: payload)
    }
}

/// The built-in collectors as a pure state machine: each `cycle` turns a
/// snapshot into the messages of the seed's topics and fields (plus the new
/// collectors'), using the previous snapshot for rates and CPU deltas.
public struct Collector: Sendable {
    public let host: String
    private var previousCPU: CPUTimes?
    private var previousNet: [String: InterfaceCounters] = [:]
    private var previousDisk: [String: DiskCounters] = [:]
    private var previousAt: Double?

    public init(host: String) { self.host = host }

    /// `now`: monotonic seconds (for rates); `timestamp`: Unix seconds (`ts`).
    public mutating func cycle(_ snapshot: HostSnapshot, now: Double, timestamp: Int64) -> [AgentMessage] {
        var messages: [AgentMessage] = []
        let ts = JSONValue.number(Double(timestamp))
        func message(_ kind: String, _ fields: [(String, JSONValue)]) {
            messages.append(AgentMessage(topic: "metrics/\(kind)/\(host)", payload: JSONObject([("host", .string(host))] + fields + [("ts", ts)])))
        }
        let load = snapshot.loadavg.flatMap(LoadAverage.parse)
        let cpu = snapshot.stat.flatMap(CPUTimes.parse)
        let elapsed = previousAt.map { now - $0 } ?? 0

        if let cpu, let previous = previousCPU {
            let usage = CPUUsage(from: previous, to: cpu)
            message("cpu", [
                ("cpu_pct", .number(Self.round(usage.total))), ("load", .number(load?.one ?? 0)), ("cores", .number(Double(cpu.cores))),
                ("user_pct", .number(Self.round(usage.user))), ("system_pct", .number(Self.round(usage.system))),
                ("iowait_pct", .number(Self.round(usage.iowait))), ("steal_pct", .number(Self.round(usage.steal))),
            ])
        }
        if let load {
            message("load", [
                ("load1", .number(load.one)), ("load5", .number(load.five)), ("load15", .number(load.fifteen)),
                ("cores", .number(Double(cpu?.cores ?? 1))), ("procs", .number(Double(load.processes))), ("procs_running", .number(Double(load.running))),
            ])
        }
        if let memory = snapshot.meminfo.flatMap(MemoryInfo.parse) {
            message("memory", [
                ("mem_pct", .number(Self.round(memory.usedPercent))), ("mem_used_kb", .number(Double(memory.usedKB))),
                ("mem_total_kb", .number(Double(memory.totalKB))), ("mem_available_kb", .number(Double(memory.availableKB))),
            ])
            message("swap", [
                ("swap_pct", .number(Self.round(memory.swapPercent))), ("swap_used_kb", .number(Double(memory.swapUsedKB))),
                ("swap_total_kb", .number(Double(memory.swapTotalKB))),
            ])
        }
        if !snapshot.filesystems.isEmpty {
            let root = snapshot.filesystems.first { $0.mount.mountPoint == "/" } ?? snapshot.filesystems[0]
            let mounts: [JSONValue] = snapshot.filesystems.map { fs in
                .object(JSONObject([
                    ("mount", .string(fs.mount.mountPoint)), ("device", .string(fs.mount.device)), ("fstype", .string(fs.mount.type)),
                    ("disk_pct", .number(Self.round(fs.usedPercent))), ("used_bytes", .number(Double(fs.totalBytes - min(fs.totalBytes, fs.freeBytes)))),
                    ("total_bytes", .number(Double(fs.totalBytes))), ("inodes_pct", .number(Self.round(fs.inodesUsedPercent))),
                    ("read_only", .bool(fs.mount.readOnly)),
                ]))
            }
            message("disk", [("disk_pct", .number(Self.round(root.usedPercent))), ("mounts", .array(mounts))])
        }
        if let uptime = snapshot.uptime.flatMap(Uptime.parse) {
            message("uptime", [("uptime_sec", .number(uptime.rounded(.down)))])
        }
        let interfaces = snapshot.netDev.map(InterfaceCounters.parse) ?? []
        if elapsed > 0, !interfaces.isEmpty {
            let rows: [JSONValue] = interfaces.compactMap { now in
                guard let old = previousNet[now.name] else { return nil }
                func rate(_ a: UInt64, _ b: UInt64) -> JSONValue { .number(b >= a ? Self.round(Double(b - a) / elapsed) : 0) } // a reset counter reads as 0
                return .object(JSONObject([
                    ("iface", .string(now.name)), ("rx_bytes_ps", rate(old.rxBytes, now.rxBytes)), ("tx_bytes_ps", rate(old.txBytes, now.txBytes)),
                    ("rx_packets_ps", rate(old.rxPackets, now.rxPackets)), ("tx_packets_ps", rate(old.txPackets, now.txPackets)),
                    ("rx_errors", .number(Double(now.rxErrors))), ("tx_errors", .number(Double(now.txErrors))),
                    ("rx_dropped", .number(Double(now.rxDropped))), ("tx_dropped", .number(Double(now.txDropped))),
                ]))
            }
            if !rows.isEmpty { message("net", [("interfaces", .array(rows))]) }
        }
        let disks = snapshot.diskstats.map(DiskCounters.parse) ?? []
        if elapsed > 0, !disks.isEmpty {
            let rows: [JSONValue] = disks.compactMap { now in
                guard let old = previousDisk[now.device] else { return nil }
                func rate(_ a: UInt64, _ b: UInt64) -> Double { b >= a ? Double(b - a) * 512 / elapsed : 0 }
                let busy = now.ioMilliseconds >= old.ioMilliseconds ? Double(now.ioMilliseconds - old.ioMilliseconds) / (elapsed * 1000) * 100 : 0
                return .object(JSONObject([
                    ("device", .string(now.device)), ("read_bytes_ps", .number(Self.round(rate(old.sectorsRead, now.sectorsRead)))),
                    ("write_bytes_ps", .number(Self.round(rate(old.sectorsWritten, now.sectorsWritten)))), ("util_pct", .number(Self.round(min(100, busy)))),
                ]))
            }
            if !rows.isEmpty { message("io", [("devices", .array(rows))]) }
        }

        previousCPU = cpu ?? previousCPU
        previousNet = Dictionary(interfaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        previousDisk = Dictionary(disks.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
        previousAt = now
        return messages
    }

    /// One decimal, as the seed's messages carry (`42.1`).
    static func round(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
