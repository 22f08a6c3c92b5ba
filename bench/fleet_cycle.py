"""One cycle of a simulated fleet for the benchmarks: the agent's eight
messages per host (`metrics/KIND/sim-NNNNN PAYLOAD` lines for `pilot publish
--stdin`), deterministic (seed 3).

  python3 bench/fleet_cycle.py HOSTS OUT [--ts UNIX] [--history-minutes M] [--some FILE]

--history-minutes writes, before the cycle, CPU, memory and disk once a
minute for the M minutes before --ts (full sparklines); --some writes the
cycle of the first 1 % of the hosts to FILE too.
"""
import argparse
import json
import random

parser = argparse.ArgumentParser()
parser.add_argument("hosts", type=int)
parser.add_argument("out")
parser.add_argument("--ts", type=int, default=1764100000)
parser.add_argument("--history-minutes", type=int, default=0)
parser.add_argument("--some")
args = parser.parse_args()
random.seed(3)


def line(kind, host, ts, **fields):
    return "metrics/%s/%s %s\n" % (kind, host, json.dumps(dict(host=host, **fields, ts=ts), separators=(",", ":")))


with open(args.out, "w") as out:
    few = open(args.some, "w") if args.some else None
    for minute in range(args.history_minutes, 0, -1):
        ts = args.ts - minute * 60
        for i in range(args.hosts):
            h = "sim-%05d" % i
            out.write(line("cpu", h, ts, cpu_pct=round(random.uniform(1, 80), 1)))
            out.write(line("memory", h, ts, mem_pct=round(random.uniform(10, 80), 1)))
            out.write(line("disk", h, ts, disk_pct=44.4, mounts=[dict(mount="/var", disk_pct=round(random.uniform(10, 80), 1))]))
    for i in range(args.hosts):
        h = "sim-%05d" % i
        lines = [
            line("cpu", h, args.ts, cpu_pct=round(random.uniform(1, 80), 1), load=0.52, cores=4, user_pct=20.1, system_pct=3.2, iowait_pct=0.4, steal_pct=0),
            line("load", h, args.ts, load1=0.52, load5=0.4, load15=0.3, cores=4, procs=180, procs_running=2),
            line("memory", h, args.ts, mem_pct=round(random.uniform(10, 80), 1), mem_used_kb=2048000, mem_total_kb=8192000, mem_available_kb=6144000),
            line("swap", h, args.ts, swap_pct=0, swap_used_kb=0, swap_total_kb=0),
            line("disk", h, args.ts, disk_pct=44.4, mounts=[
                dict(mount="/", device="/dev/vda1", fstype="ext4", disk_pct=44.4, used_bytes=40000000000, total_bytes=90000000000, inodes_pct=3, read_only=False),
                dict(mount="/var", device="/dev/vdb1", fstype="xfs", disk_pct=round(random.uniform(10, 80), 1), used_bytes=20000000000, total_bytes=90000000000,
                     inodes_pct=1, read_only=False)]),
            line("uptime", h, args.ts, uptime_sec=1234567),
            line("net", h, args.ts, interfaces=[dict(iface="eth0", rx_bytes_ps=12000.5, tx_bytes_ps=8000.2, rx_packets_ps=40, tx_packets_ps=35, rx_errors=0,
                                                     tx_errors=0, rx_dropped=0, tx_dropped=0)]),
            line("io", h, args.ts, devices=[dict(device="vda", read_bytes_ps=1024, write_bytes_ps=20480, util_pct=1.2)]),
        ]
        out.writelines(lines)
        if few and i < max(1, args.hosts // 100):
            few.writelines(lines)
    if few:
        few.close()
