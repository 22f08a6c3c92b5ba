#!/usr/bin/env python3
"""Small UDP tool for the network-namespace tests. Every wait has a timeout
and every loop a bound, so a broken topology makes it fail, never hang.

  echo    --listen IP:PORT [--listen IP:PORT ...] [--ready FILE] [--lifetime S]
          Answers every datagram with "SEEN <src-ip>:<src-port> <payload>",
          so a client learns its public (post-NAT) address, like STUN.
  whoami  --local-port P --server IP:PORT [--server ...]
          From ONE socket bound to P, asks each server what it saw; prints
          "<server> <observed-ip>:<observed-port>" per server.
  punch   --local-port P --server IP:PORT --me FILE --peer FILE
          Learns its public address from the server, publishes it in FILE,
          waits for the peer's FILE, then sends to the peer's public address
          a few times while listening. Exit 0 when a packet from the peer
          arrived directly, 2 when none did (the expected outcome with a
          symmetric NAT), 1 on any other error.
  loss    --server IP:PORT [--count N] [--window W]
          Sends N numbered probes in windows of W and counts the echoes;
          prints "sent N received M lost L loss_pct X".
"""
import argparse
import os
import select
import socket
import sys
import time

RCVBUF = 1 << 20


def addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("want IP:PORT, got %r" % text)
    return (host, int(port))


def fmt(a):
    return "%s:%d" % (a[0], a[1])


def udp_socket(local_port=0, bind_ip="0.0.0.0"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.bind((bind_ip, local_port))
    return s


def die(msg, code=1):
    print("udp_probe: " + msg, file=sys.stderr)
    sys.exit(code)


def cmd_echo(args):
    socks = [udp_socket(a[1], a[0]) for a in args.listen]
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(fmt(s.getsockname()) for s in socks) + "\n")
        os.rename(tmp, args.ready)
    deadline = time.monotonic() + args.lifetime
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return 0
        ready, _, _ = select.select(socks, [], [], min(left, 1.0))
        for s in ready:
            for _ in range(256):  # drain a burst, bounded
                try:
                    data, src = s.recvfrom(2048, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                s.sendto(b"SEEN " + fmt(src).encode() + b" " + data, src)


def ask(sock, server, tries, timeout):
    """Asks SERVER what it sees as our address; returns (ip, port) or None."""
    nonce = os.urandom(6).hex().encode()
    for _ in range(tries):
        sock.sendto(b"WHO " + nonce, server)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, src = sock.recvfrom(2048)
            parts = data.split(b" ")
            if src == server and len(parts) == 4 and parts[0] == b"SEEN" and parts[3] == nonce:
                return addr(parts[1].decode())
    return None


def cmd_whoami(args):
    s = udp_socket(args.local_port)
    failed = 0
    for server in args.server:
        seen = ask(s, server, args.tries, args.timeout)
        if seen is None:
            print("%s none" % fmt(server))
            failed += 1
        else:
            print("%s %s" % (fmt(server), fmt(seen)))
    return 1 if failed else 0


def wait_file(path, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    return None


def cmd_punch(args):
    s = udp_socket(args.local_port)
    mine = ask(s, args.server, args.tries, args.timeout)
    if mine is None:
        die("no answer from %s" % fmt(args.server))
    tmp = args.me + ".tmp"
    with open(tmp, "w") as f:
        f.write(fmt(mine) + "\n")
    os.rename(tmp, args.me)
    text = wait_file(args.peer, args.peer_wait)
    if text is None:
        die("peer never published its address in %s" % args.peer)
    peer = addr(text)
    got_from = None     # where the peer's first punch came from
    acked = False       # the peer confirmed it received one of ours
    sends = 0
    for sends in range(1, args.sends + 1):
        s.sendto(b"PUNCH %d" % sends, peer)
        deadline = time.monotonic() + args.interval
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([s], [], [], left)
            if not ready:
                break
            data, src = s.recvfrom(2048)
            if src[0] != peer[0]:
                continue  # only the peer's public IP counts as direct
            if data.startswith(b"PUNCH"):
                got_from = got_from or src
                s.sendto(b"ACK", src)
            elif data == b"ACK":
                acked = True
        if got_from and acked:
            break
    # A few more ACKs so a peer still punching hears back, then report.
    if got_from:
        for _ in range(3):
            s.sendto(b"ACK", got_from)
        print("punch ok: me %s peer %s received-from %s after %d sends%s"
              % (fmt(mine), fmt(peer), fmt(got_from), sends, "" if acked else " (no ack)"))
        return 0
    print("punch failed: me %s peer %s, nothing from the peer after %d sends"
          % (fmt(mine), fmt(peer), sends))
    return 2


def cmd_loss(args):
    s = udp_socket(0)
    received = set()
    sent = 0
    seq = 0
    while seq < args.count:
        window = range(seq, min(seq + args.window, args.count))
        pending = set(window)
        for n in window:
            s.sendto(b"P %d" % n, args.server)
            sent += 1
        seq = window.stop
        # Collect until the whole window came back or the line went quiet.
        while pending:
            ready, _, _ = select.select([s], [], [], args.quiet)
            if not ready:
                break
            data, src = s.recvfrom(2048)
            parts = data.split(b" ")
            if src == args.server and len(parts) == 4 and parts[2] == b"P" and parts[3].isdigit():
                n = int(parts[3])
                pending.discard(n)
                received.add(n)
    lost = sent - len(received)
    print("sent %d received %d lost %d loss_pct %.2f" % (sent, len(received), lost, 100.0 * lost / sent))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--listen", type=addr, action="append", required=True)
    e.add_argument("--ready")
    e.add_argument("--lifetime", type=float, default=120.0)
    for name in ("whoami", "punch"):
        c = sub.add_parser(name)
        c.add_argument("--local-port", type=int, required=True)
        c.add_argument("--server", type=addr, action="append" if name == "whoami" else "store", required=True)
        c.add_argument("--tries", type=int, default=5)
        c.add_argument("--timeout", type=float, default=0.3)
        if name == "punch":
            c.add_argument("--me", required=True)
            c.add_argument("--peer", required=True)
            c.add_argument("--peer-wait", type=float, default=5.0)
            c.add_argument("--sends", type=int, default=20)
            c.add_argument("--interval", type=float, default=0.1)
    l = sub.add_parser("loss")
    l.add_argument("--server", type=addr, required=True)
    l.add_argument("--count", type=int, default=2000)
    l.add_argument("--window", type=int, default=100)
    l.add_argument("--quiet", type=float, default=0.1)
    args = p.parse_args()
    return {"echo": cmd_echo, "whoami": cmd_whoami, "punch": cmd_punch, "loss": cmd_loss}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
