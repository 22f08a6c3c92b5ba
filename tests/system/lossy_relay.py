#!/usr/bin/env python3
"""A UDP relay that loses, delays and reorders datagrams, for tests.

  lossy_relay.py --listen 127.0.0.1:0 --port-file F --target-file T
                 [--loss 0.1] [--max-delay-ms 15] [--lifetime 180] [--record FILE]

Binds --listen and writes its port to --port-file. Datagrams from the
target (whose "host:port" is read from --target-file once it exists) go to
the last other sender (the client); every other datagram goes to the
target. Each datagram is dropped with probability --loss, else delayed by a
uniform random 0..--max-delay-ms, so later ones overtake earlier ones. It
stops by itself after --lifetime seconds and prints its counters.
With --record FILE it also keeps the first tunnel handshake initiation
the client sent (tunnel version 3, kind 1), as an on-path attacker would.
"""
import argparse
import heapq
import os
import random
import select
import signal
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--target-file", required=True)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--max-delay-ms", type=float, default=15.0)
    parser.add_argument("--lifetime", type=float, default=180.0)
    parser.add_argument("--record")
    args = parser.parse_args()

    host, port = args.listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, int(port)))
    sock.setblocking(False)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(sock.getsockname()[1]))
    os.replace(tmp, args.port_file)

    target = None
    client = None
    queue = []  # (due, seq, data, address)
    seq = 0
    stats = {"in": 0, "dropped": 0, "out": 0, "reordered": 0}
    last_sent_seq = {}
    deadline = [time.monotonic() + args.lifetime]
    # SIGTERM ends the run cleanly, so the counters are still printed.
    signal.signal(signal.SIGTERM, lambda *_: deadline.__setitem__(0, 0.0))
    rng = random.Random(7)
    while time.monotonic() < deadline[0]:
        if target is None and os.path.exists(args.target_file):
            text = open(args.target_file).read().strip()
            if text:
                h, p = text.rsplit(":", 1)
                target = (h, int(p))
        timeout = 0.05
        if queue:
            timeout = max(0.0, min(timeout, queue[0][0] - time.monotonic()))
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except InterruptedError:
            continue
        if readable:
            for _ in range(256):
                try:
                    data, source = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                stats["in"] += 1
                if target is None:
                    continue
                destination = client if source == target else target
                if source != target:
                    client = source
                    if args.record and data[:2] == b"\x03\x01" and not os.path.exists(args.record):
                        with open(args.record + ".tmp", "wb") as f:
                            f.write(data)
                        os.replace(args.record + ".tmp", args.record)
                if destination is None:
                    continue
                if rng.random() < args.loss:
                    stats["dropped"] += 1
                    continue
                seq += 1
                due = time.monotonic() + rng.uniform(0, args.max_delay_ms) / 1000.0
                heapq.heappush(queue, (due, seq, data, destination))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, number, data, destination = heapq.heappop(queue)
            if number < last_sent_seq.get(destination, 0):
                stats["reordered"] += 1
            last_sent_seq[destination] = max(number, last_sent_seq.get(destination, 0))
            try:
                sock.sendto(data, destination)
                stats["out"] += 1
            except OSError:
                pass
    print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
