import PilotAgent
import PilotCore
import Testing

/// Captured /proc texts in Fixtures/ (this machine's, plus odd ones made
/// for the cases it cannot show: 128 CPUs, an old kernel, bind mounts).
enum Fixture {
    static let directory = String(#filePath.dropLast("ProcParserTests.swift".count)) + "Fixtures/"
    static func text(_ name: String) throws -> String { try LocalFile.readText(directory + name, maxBytes: 1 << 20) }
}

@Suite struct ProcParserTests {
    @Test func cpuTimesFromACapturedStat() throws {
        let cpu = try #require(CPUTimes.parse(try Fixture.text("stat.txt")))
        #expect(cpu.cores == 2)
        #expect(cpu.user == 1_000_455 && cpu.system == 105_434 && cpu.idle == 1_495_788 && cpu.iowait == 4_268 && cpu.steal == 222)
    }

    @Test func manyCPUsAreCounted() throws {
        let cpu = try #require(CPUTimes.parse(try Fixture.text("stat-128cpu.txt")))
        #expect(cpu.cores == 128)
        #expect(cpu.total > 0)
    }

    @Test func anOldKernelWithoutStealStillReads() throws {
        let cpu = try #require(CPUTimes.parse(try Fixture.text("stat-old-kernel.txt")))
        #expect(cpu.steal == 0 && cpu.softirq == 5 && cpu.cores == 1)
        #expect(CPUTimes.parse("intr 1 2\n") == nil)
        #expect(CPUTimes.parse("cpu 1 2\n") == nil) // too few fields: no guess
    }

    @Test func cpuUtilisationComesFromDeltas() {
        let old = CPUTimes(user: 100, nice: 0, system: 50, idle: 800, iowait: 50, irq: 0, softirq: 0, steal: 0, cores: 4)
        let new = CPUTimes(user: 160, nice: 0, system: 70, idle: 900, iowait: 60, irq: 0, softirq: 0, steal: 10, cores: 4)
        let usage = CPUUsage(from: old, to: new)
        // 200 ticks elapsed: busy 60 + 20 + 10 (steal) = 90.
        #expect(usage.total == 45)
        #expect(usage.user == 30 && usage.system == 10 && usage.iowait == 5 && usage.steal == 5)
        #expect(CPUUsage(from: new, to: old).total == 0) // counters went back (a restore): no nonsense
    }

    @Test func memoryFromACapturedMeminfo() throws {
        let memory = try #require(MemoryInfo.parse(try Fixture.text("meminfo.txt")))
        #expect(memory.totalKB == 24_684_092 && memory.availableKB == 24_258_564)
        #expect(memory.usedKB == 425_528)
        #expect(abs(memory.usedPercent - 1.7239) < 0.001)
    }

    @Test func anOldKernelWithoutMemAvailableEstimatesIt() throws {
        let memory = try #require(MemoryInfo.parse(try Fixture.text("meminfo-old-kernel.txt")))
        #expect(memory.availableKB == 512_000 + 64_000 + 256_000)
        #expect(memory.swapUsedKB == 524_288 && memory.swapPercent == 50)
        #expect(MemoryInfo.parse("MemFree: 1 kB\n") == nil)
    }

    @Test func realFilesystemsOnlyEachDeviceOnce() throws {
        let mounts = Mount.parseReal(try Fixture.text("mounts.txt"))
        #expect(mounts.map(\.mountPoint) == ["/"]) // /dev/vda again at /run/netns is the same filesystem
        #expect(mounts.first?.type == "ext4")
    }

    @Test func oddMountTablesReadRight() throws {
        let mounts = Mount.parseReal(try Fixture.text("mounts-odd.txt"))
        #expect(mounts.map(\.mountPoint) == ["/", "/var", "/mnt/backup disk", "/mnt/nfs"])
        #expect(mounts.allSatisfy { !$0.readOnly }) // the read-only bind of /dev/sda2 is not counted twice
        #expect(!mounts.contains { ["tmpfs", "overlay", "squashfs", "proc"].contains($0.type) })
    }

    @Test func interfaceCounters() throws {
        let interfaces = InterfaceCounters.parse(try Fixture.text("net-dev.txt"))
        #expect(interfaces.map(\.name) == ["lo", "ifb0", "ifb1", "eth0"])
        let eth0 = try #require(interfaces.last)
        #expect(eth0.rxBytes == 17_031_818 && eth0.rxPackets == 632 && eth0.txBytes == 45_473 && eth0.txPackets == 557)
    }

    @Test func diskCountersLeaveOutLoopAndZram() throws {
        let disks = DiskCounters.parse(try Fixture.text("diskstats.txt"))
        #expect(disks.map(\.device) == ["vda"])
        #expect(disks[0].sectorsRead == 42_789_458 && disks[0].sectorsWritten == 53_637_472 && disks[0].ioMilliseconds == 129_964)
    }

    @Test func loadAndUptime() throws {
        let load = try #require(LoadAverage.parse(try Fixture.text("loadavg.txt")))
        #expect(load.one == 0.46 && load.five == 0.73 && load.fifteen == 0.65 && load.running == 1 && load.processes == 78)
        #expect(Uptime.parse(try Fixture.text("uptime.txt")) == 13_110.07)
        #expect(LoadAverage.parse("garbage") == nil)
    }
}

@Suite struct CollectorTests {
    func snapshot(cpuUser: Int, rx: Int, sectors: Int) throws -> HostSnapshot {
        var snapshot = HostSnapshot()
        snapshot.stat = "cpu  \(cpuUser) 0 100 1000 0 0 0 0 0 0\ncpu0 1 0 0 0\ncpu1 1 0 0 0\ncpu2 1 0 0 0\ncpu3 1 0 0 0\n"
        snapshot.loadavg = try Fixture.text("loadavg.txt")
        snapshot.meminfo = try Fixture.text("meminfo.txt")
        snapshot.uptime = try Fixture.text("uptime.txt")
        snapshot.netDev = "h\nh\n  eth0: \(rx) 10 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n"
        snapshot.diskstats = " 254 0 vda 1 0 \(sectors) 0 1 0 \(sectors) 0 0 100 0\n"
        let root = Mount(device: "/dev/vda", mountPoint: "/", type: "ext4", readOnly: false)
        let variable = Mount(device: "/dev/vdb", mountPoint: "/var", type: "xfs", readOnly: false)
        snapshot.filesystems = [
            FilesystemUsage(mount: root, totalBytes: 100_000, freeBytes: 60_000, availableBytes: 50_000, inodes: 1000, inodesFree: 900),
            FilesystemUsage(mount: variable, totalBytes: 100_000, freeBytes: 2_000, availableBytes: 0, inodes: 10, inodesFree: 1),
        ]
        return snapshot
    }

    @Test func messagesCarryTheSeedsTopicsAndFields() throws {
        var collector = Collector(host: "web-01")
        let first = collector.cycle(try snapshot(cpuUser: 1000, rx: 1000, sectors: 100), now: 100, timestamp: 1_764_100_000)
        #expect(!first.contains { $0.topic == "metrics/cpu/web-01" }) // a first reading has no delta
        let second = collector.cycle(try snapshot(cpuUser: 1100, rx: 3000, sectors: 300), now: 110, timestamp: 1_764_100_010)
        let byTopic = Dictionary(second.map { ($0.topic, $0.payload) }, uniquingKeysWith: { a, _ in a })
        let cpu = try #require(byTopic["metrics/cpu/web-01"])
        #expect(Array(cpu.keys.prefix(4)) == ["host", "cpu_pct", "load", "cores"] && cpu.keys.last == "ts") // the seed's order
        #expect(cpu["host"] == .string("web-01") && cpu["cpu_pct"] == .number(100) && cpu["load"] == .number(0.46) && cpu["cores"] == .number(4))
        #expect(cpu["ts"] == .number(1_764_100_010))
        let memory = try #require(byTopic["metrics/memory/web-01"])
        #expect(memory["mem_pct"] == .number(1.7) && memory["mem_used_kb"] == .number(425_528) && memory["mem_total_kb"] == .number(24_684_092))
        let disk = try #require(byTopic["metrics/disk/web-01"])
        #expect(disk["disk_pct"] == .number(44.4)) // used 40,000 / (40,000 + 50,000 available)
        guard case .array(let mounts)? = disk["mounts"], mounts.count == 2 else { Issue.record("no mounts: \(disk)"); return }
        #expect(mounts[1]["mount"] == .string("/var") && mounts[1]["disk_pct"] == .number(100) && mounts[1]["inodes_pct"] == .number(90))
        #expect(byTopic["metrics/uptime/web-01"]?["uptime_sec"] == .number(13_110))
        guard case .array(let interfaces)? = byTopic["metrics/net/web-01"]?["interfaces"] else { Issue.record("no net"); return }
        #expect(interfaces.first?["rx_bytes_ps"] == .number(200))
        guard case .array(let devices)? = byTopic["metrics/io/web-01"]?["devices"] else { Issue.record("no diskio"); return }
        #expect(devices.first?["read_bytes_ps"] == .number(200 * 512 / 10))
        #expect(byTopic["metrics/load/web-01"]?["procs"] == .number(78))
        #expect(byTopic["metrics/swap/web-01"] != nil)
        for message in second { #expect((try? JSONValue.parse(message.json)) != nil) }
    }
}
