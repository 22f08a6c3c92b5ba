#!/usr/bin/env python3
"""A recording HTTP receiver for the alert router's tests.

Every request is appended to --out as one JSON line (flushed at once):
{"t": unix time, "method", "path", "headers": {lower-case name: value},
"body": parsed JSON or null, "raw": text when not JSON, "status": answer}.

Answers 200, except:
  --plan 429:2,503,200   the first requests get these statuses in turn
                         (429:N adds Retry-After: N), then 200;
  --rate N               more than N requests in any one second get 429
                         with Retry-After: 1;
  --delay S              every answer waits S seconds first (a slow receiver).
It stops by itself after --max-seconds.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--plan", default="")
parser.add_argument("--rate", type=int, default=0)
parser.add_argument("--delay", type=float, default=0)
parser.add_argument("--max-seconds", type=float, default=300)
args = parser.parse_args()

plan = [item for item in args.plan.split(",") if item]
lock = threading.Lock()
recent = []
out = open(args.out, "a", encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        now = time.time()
        with lock:
            status, retry_after = 200, None
            if plan:
                step = plan.pop(0)
                code, _, after = step.partition(":")
                status, retry_after = int(code), after or None
            elif args.rate:
                recent[:] = [t for t in recent if now - t < 1]
                if len(recent) >= args.rate:
                    status, retry_after = 429, "1"
                else:
                    recent.append(now)
            try:
                body, raw = json.loads(data) if data else None, None
            except ValueError:
                body, raw = None, data.decode("utf-8", "replace")
            record = {"t": now, "method": self.command, "path": self.path,
                      "headers": {k.lower(): v for k, v in self.headers.items()},
                      "body": body, "raw": raw, "status": status}
            out.write(json.dumps(record) + "\n")
            out.flush()
        if args.delay:
            time.sleep(args.delay)
        self.send_response(status)
        if retry_after:
            self.send_header("Retry-After", retry_after)
        answer = b'{"status":"success"}' if status < 300 else b"try later"
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = handle_any
    do_GET = handle_any
    do_PUT = handle_any


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # senders that open many connections at once (Alertmanager) are not refused


server = Server(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
threading.Timer(args.max_seconds, server.shutdown).start()
print("ready", flush=True)
server.serve_forever()
