#!/usr/bin/python3
"""A small SMTP server for testing pilot's email receiver.

Needs Debian's python3-aiosmtpd (run it with /usr/bin/python3, not a pyenv
python) and openssl. At start it makes a self-signed certificate for
127.0.0.1 (cert.pem and key.pem in --dir), then listens on 127.0.0.1:--port
(0: a free port) and requires STARTTLS and then AUTH (LOGIN only, unless
--mechanisms says otherwise) with --user/--password; --implicit-tls makes it
an smtps:// server instead. Every message it takes is one JSON line in --out:
{"mail_from", "rcpt_tos", "data", "auth_user"}. It prints "ready PORT" once
listening and exits by itself after --max-seconds.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def make_certificate(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return cert, key


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        user = auth.login.decode("utf-8", "replace") if auth is not None and hasattr(auth, "login") else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace") if isinstance(envelope.content, bytes) else envelope.content,
            "auth_user": user,
        }
        with self.lock:
            self.count += 1
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
                out.flush()
            return "250 2.0.0 OK queued as test%d" % self.count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where cert.pem and key.pem go")
    parser.add_argument("--out", required=True, help="the JSON-lines file of received messages")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="pilot")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--mechanisms", default="LOGIN", help="comma-separated: LOGIN, PLAIN")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (smtps://)")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    # A launcher's blocked signals are inherited: SIGTERM must stop this.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])

    os.makedirs(args.dir, exist_ok=True)
    cert, key = make_certificate(args.dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode("utf-8", "replace") == args.user
              and auth_data.password.decode("utf-8", "replace") == args.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    offered = {m.strip().upper() for m in args.mechanisms.split(",") if m.strip()}
    excluded = [m for m in ("LOGIN", "PLAIN") if m not in offered]
    port = args.port or free_port()
    kwargs = dict(
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=excluded,
    )
    if args.implicit_tls:
        # aiosmtpd counts only STARTTLS as TLS; here every byte is.
        kwargs["auth_require_tls"] = False
        controller = Controller(Recorder(args.out), hostname="127.0.0.1", port=port, ssl_context=context,
                                server_hostname="127.0.0.1", **kwargs)
    else:
        controller = Controller(Recorder(args.out), hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True, **kwargs)
    controller.start()
    print("ready %d" % port, flush=True)
    stop = threading.Event()
    try:
        stop.wait(args.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
