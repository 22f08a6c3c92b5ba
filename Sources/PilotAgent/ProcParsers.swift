/// Parsers of the kernel's text files the agent reads, as pure functions of
/// their text: every one is tested against captured copies, including odd
/// ones (many CPUs, fields an old kernel lacks, bind mounts). A line that
/// cannot be read is skipped, never a crash.

/// `/proc/stat`: the aggregate `cpu` line in clock ticks, and the number
/// of `cpuN` lines (the cores the kernel schedules on).
public struct CPUTimes: Equatable, Sendable {
    public var user: UInt64 = 0, nice: UInt64 = 0, system: UInt64 = 0, idle: UInt64 = 0
    public var iowait: UInt64 = 0, irq: UInt64 = 0, softirq: UInt64 = 0, steal: UInt64 = 0
    public var cores = 0

    public init(user: UInt64 = 0, nice: UInt64 = 0, system: UInt64 = 0, idle: UInt64 = 0, iowait: UInt64 = 0, irq: UInt64 = 0,
                softirq: UInt64 = 0, steal: UInt64 = 0, cores: Int = 0) {
        (self.user, self.nice, self.system, self.idle, self.iowait, self.irq, self.softirq, self.steal, self.cores) =
            (user, nice, system, idle, iowait, irq, softirq, steal, cores)
    }

    /// Guest time is already counted in user time: left out of the total.
    public var total: UInt64 { user &+ nice &+ system &+ idle &+ iowait &+ irq &+ softirq &+ steal }
    public var busy: UInt64 { total &- idle &- iowait }

    public static func parse(_ text: String) -> CPUTimes? {
        var times: CPUTimes?
        var cores = 0
        for line in text.split(separator: "\n") where line.hasPrefix("cpu") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields[0] == "cpu" {
                let numbers = fields.dropFirst().map { UInt64($0) ?? 0 }
                guard numbers.count >= 4 else { return nil }
                func at(_ index: Int) -> UInt64 { index < numbers.count ? numbers[index] : 0 }
                times = CPUTimes(user: at(0), nice: at(1), system: at(2), idle: at(3), iowait: at(4), irq: at(5), softirq: at(6), steal: at(7))
            } else if fields[0].dropFirst(3).allSatisfy(\.isNumber) {
                cores += 1
            }
        }
        times?.cores = max(1, cores)
        return times
    }
}

/// CPU utilisation between two readings, in percent of all cores.
public struct CPUUsage: Equatable, Sendable {
    public var total: Double, user: Double, system: Double, iowait: Double, steal: Double

    public init(from old: CPUTimes, to new: CPUTimes) {
        let elapsed = Double(new.total &- old.total)
        guard new.total > old.total else {
            self.init(total: 0, user: 0, system: 0, iowait: 0, steal: 0)
            return
        }
        func pct(_ a: UInt64, _ b: UInt64) -> Double { b >= a ? Double(b - a) / elapsed * 100 : 0 }
        self.init(total: pct(old.busy, new.busy), user: pct(old.user &+ old.nice, new.user &+ new.nice),
                  system: pct(old.system &+ old.irq &+ old.softirq, new.system &+ new.irq &+ new.softirq),
                  iowait: pct(old.iowait, new.iowait), steal: pct(old.steal, new.steal))
    }

    init(total: Double, user: Double, system: Double, iowait: Double, steal: Double) {
        self.total = total
        self.user = user
        self.system = system
        self.iowait = iowait
        self.steal = steal
    }
}

/// `/proc/loadavg`: `0.50 0.75 0.65 1/78 16497`.
public struct LoadAverage: Equatable, Sendable {
    public var one: Double, five: Double, fifteen: Double
    public var running: Int, processes: Int

    public static func parse(_ text: String) -> LoadAverage? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 4, let one = Double(fields[0]), let five = Double(fields[1]), let fifteen = Double(fields[2]) else { return nil }
        let tasks = fields[3].split(separator: "/")
        return LoadAverage(one: one, five: five, fifteen: fifteen,
                           running: tasks.first.flatMap { Int($0) } ?? 0, processes: tasks.count == 2 ? Int(tasks[1]) ?? 0 : 0)
    }
}

/// `/proc/meminfo`, in kB. MemAvailable appeared in Linux 3.14; before it
/// the estimate is free + buffers + cached.
public struct MemoryInfo: Equatable, Sendable {
    public var totalKB: UInt64, availableKB: UInt64, swapTotalKB: UInt64, swapFreeKB: UInt64

    public var usedKB: UInt64 { totalKB > availableKB ? totalKB - availableKB : 0 }
    public var usedPercent: Double { totalKB == 0 ? 0 : Double(usedKB) / Double(totalKB) * 100 }
    public var swapUsedKB: UInt64 { swapTotalKB > swapFreeKB ? swapTotalKB - swapFreeKB : 0 }
    public var swapPercent: Double { swapTotalKB == 0 ? 0 : Double(swapUsedKB) / Double(swapTotalKB) * 100 }

    public static func parse(_ text: String) -> MemoryInfo? {
        var values: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let number = line[line.index(after: colon)...].split(separator: " ").first.flatMap { UInt64($0) }
            if let number { values[line[..<colon]] = number }
        }
        guard let total = values["MemTotal"] else { return nil }
        let available = values["MemAvailable"] ?? min(total, (values["MemFree"] ?? 0) + (values["Buffers"] ?? 0) + (values["Cached"] ?? 0))
        return MemoryInfo(totalKB: total, availableKB: available, swapTotalKB: values["SwapTotal"] ?? 0, swapFreeKB: values["SwapFree"] ?? 0)
    }
}

/// `/proc/uptime`: seconds since boot.
public enum Uptime {
    public static func parse(_ text: String) -> Double? {
        text.split(separator: " ").first.flatMap { Double($0) }
    }
}

/// One line of `/proc/self/mounts`.
public struct Mount: Equatable, Sendable {
    public var device: String, mountPoint: String, type: String, readOnly: Bool

    public init(device: String, mountPoint: String, type: String, readOnly: Bool) {
        (self.device, self.mountPoint, self.type, self.readOnly) = (device, mountPoint, type, readOnly)
    }

    /// Filesystems that hold no user data of their own: left out, as
    /// node_exporter and df do.
    public static let pseudoTypes: Set<String> = [
        "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "overlay", "squashfs", "mqueue", "hugetlbfs",
        "debugfs", "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl", "autofs", "binfmt_misc", "rpc_pipefs",
        "nsfs", "ramfs", "efivarfs", "selinuxfs", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "iso9660",
    ]

    /// The real, mounted filesystems, each once: a device mounted at
    /// several places (bind mounts) counts at its first mount point.
    public static func parseReal(_ text: String) -> [Mount] {
        var seen: Set<String> = []
        var result: [Mount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let type = String(fields[2])
            guard !pseudoTypes.contains(type), !type.hasPrefix("fuse.") || type == "fuse.sshfs" else { continue }
            let device = unescape(fields[0])
            guard seen.insert(device).inserted else { continue }
            let options = fields[3].split(separator: ",")
            result.append(Mount(device: device, mountPoint: unescape(fields[1]), type: type, readOnly: options.contains("ro")))
        }
        return result
    }

    /// Mount tables escape space, tab, newline and backslash as octal (`\040`).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == 0x5C, index + 3 < utf8.count, let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `/proc/net/dev`: cumulative counters per interface.
public struct InterfaceCounters: Equatable, Sendable {
    public var name: String
    public var rxBytes: UInt64, rxPackets: UInt64, rxErrors: UInt64, rxDropped: UInt64
    public var txBytes: UInt64, txPackets: UInt64, txErrors: UInt64, txDropped: UInt64

    public static func parse(_ text: String) -> [InterfaceCounters] {
        text.split(separator: "\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingSpaces
            let numbers = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            guard !name.isEmpty, numbers.count >= 16 else { return nil }
            return InterfaceCounters(name: String(name), rxBytes: numbers[0], rxPackets: numbers[1], rxErrors: numbers[2], rxDropped: numbers[3],
                                     txBytes: numbers[8], txPackets: numbers[9], txErrors: numbers[10], txDropped: numbers[11])
        }
    }
}

/// `/proc/diskstats`: cumulative counters per block device (sectors are
/// 512 bytes whatever the device's own sector size).
public struct DiskCounters: Equatable, Sendable {
    public var device: String
    public var sectorsRead: UInt64, sectorsWritten: UInt64, ioMilliseconds: UInt64

    /// Whole disks and partitions with traffic; loop, ram and zram devices
    /// are left out.
    public static func parse(_ text: String) -> [DiskCounters] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 14, let read = UInt64(fields[5]), let written = UInt64(fields[9]), let io = UInt64(fields[12]) else { return nil }
            let name = String(fields[2])
            guard !["loop", "ram", "zram", "dm-", "sr"].contains(where: { name.hasPrefix($0) }) else { return nil }
            return DiskCounters(device: name, sectorsRead: read, sectorsWritten: written, ioMilliseconds: io)
        }
    }
}

