#!/bin/sh
# Bad input to the real binary gets one clear line and a non-zero exit:
# unknown role, bad flags, an unusable state dir, a corrupt identity file.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"

expect_status 64 "unknown role" -- "$PILOT" frobnicate
expect_one_line_error "unknown role"
case "$ERR" in *"unknown role or command 'frobnicate'"*) ;; *) fail "unknown role message: $ERR" ;; esac

expect_status 64 "alert router without a receiver" -- "$PILOT" alert-router
expect_one_line_error "alert router without a receiver"
case "$ERR" in *"no receiver: give at least one --receiver"*) ;; *) fail "no-receiver message: $ERR" ;; esac
expect_status 64 "alert router with an unknown receiver kind" -- "$PILOT" alert-router --receiver sms:ops=123
expect_one_line_error "alert router with an unknown receiver kind"
case "$ERR" in *"--receiver: invalid receiver 'sms:ops=…': unknown receiver kind 'sms'"*) ;; *) fail "unknown kind message: $ERR" ;; esac

expect_status 64 "unknown flag" -- "$PILOT" init --state-dir "$SCRATCH/s" --frobnicate
expect_one_line_error "unknown flag"
expect_status 64 "missing flag value" -- "$PILOT" init --registry
expect_one_line_error "missing flag value"
expect_status 64 "bad endpoint" -- "$PILOT" init --state-dir "$SCRATCH/s" --registry "host:99999"
expect_one_line_error "bad endpoint"
case "$ERR" in *"invalid endpoint 'host:99999'"*) ;; *) fail "bad endpoint message: $ERR" ;; esac
[ ! -e "$SCRATCH/s" ] || fail "a refused command still created the state directory"

# A state directory that is a file, or under one.
: > "$SCRATCH/file"
expect_status 1 "state dir is a file" -- "$PILOT" init --hostname a --state-dir "$SCRATCH/file"
expect_one_line_error "state dir is a file"
expect_status 1 "state dir under a file" -- "$PILOT" init --hostname a --state-dir "$SCRATCH/file/sub"
expect_one_line_error "state dir under a file"

# A state directory this user cannot use: run as nobody against root's 0700 directory.
if [ "$(id -u)" = 0 ]; then
    require_command setpriv util-linux
    mkdir -m 700 "$SCRATCH/private"
    chmod 755 "$SCRATCH"
    expect_status 1 "unreadable state dir" -- setpriv --reuid=65534 --regid=65534 --clear-groups "$PILOT" init --hostname a --state-dir "$SCRATCH/private/state"
    expect_one_line_error "unreadable state dir"
    case "$ERR" in *"Permission denied"*) ;; *) fail "unreadable state dir message: $ERR" ;; esac
    # A node running as root, asked by another user: permission denied, not "no node is running".
    "$PILOT" init --hostname run-01 --state-dir "$SCRATCH/private/run" > /dev/null || fail "init run-01"
    start_bg "$SCRATCH/run-01.log" "$PILOT" agent --state-dir "$SCRATCH/private/run" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level warning
    wait_until 10 "run-01's control socket" -- "$PILOT" status --state-dir "$SCRATCH/private/run"
    expect_status 1 "another user's node" -- setpriv --reuid=65534 --regid=65534 --clear-groups "$PILOT" status --state-dir "$SCRATCH/private/run"
    expect_one_line_error "another user's node"
    case "$ERR" in *"permission denied"*) ;; *) fail "another user's node: $ERR" ;; esac
else
    expect_status 1 "unreadable state dir" -- "$PILOT" init --hostname a --state-dir /proc/1/root/state
    expect_one_line_error "unreadable state dir"
fi

# Garbage at a node's tunnel port: counted by reason in pilot status, logged once, the node unmoved.
"$PILOT" init --hostname udp-01 --state-dir "$SCRATCH/udp" > /dev/null || fail "init udp-01"
start_bg "$SCRATCH/udp-01.log" "$PILOT" agent --state-dir "$SCRATCH/udp" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
wait_until 10 "udp-01's tunnel" -- "$PILOT" status --state-dir "$SCRATCH/udp"
TUNNEL=$("$PILOT" status --json --state-dir "$SCRATCH/udp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tunnel"])')
python3 - "$TUNNEL" <<'PY'
import os, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    s.sendto(bytes([1 + i % 4]) + os.urandom(40 + i % 300), (host, int(port)))
PY
drops() { "$PILOT" status --json --state-dir "$SCRATCH/udp" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["tunnel_drops"].values()))'; }
counted() { [ "$(drops)" -ge 150 ]; }
wait_until 10 "the garbage counted in pilot status --json (tunnel_drops)" -- counted
wait_until 15 "one warning about the drops in the node's log" -- grep -q "tunnel dropped datagrams" "$SCRATCH/udp-01.log"
[ "$(grep -c "tunnel dropped datagrams" "$SCRATCH/udp-01.log")" -le 2 ] || fail "the drops were logged line by line"

# A corrupt identity file is refused and left as it was.
expect_status 0 "init" -- "$PILOT" init --hostname good --state-dir "$SCRATCH/node"
printf 'ed25519-seed AAAA\n' > "$SCRATCH/node/identity.key"
expect_status 1 "corrupt identity" -- "$PILOT" init --state-dir "$SCRATCH/node"
expect_one_line_error "corrupt identity"
case "$ERR" in *"is corrupt"*) ;; *) fail "corrupt identity message: $ERR" ;; esac
[ "$(cat "$SCRATCH/node/identity.key")" = "ed25519-seed AAAA" ] || fail "the corrupt identity file was changed"

# An identity others can read is refused with the fix.
expect_status 0 "init" -- "$PILOT" init --hostname good --state-dir "$SCRATCH/node2"
chmod 644 "$SCRATCH/node2/identity.key"
expect_status 1 "loose identity permissions" -- "$PILOT" init --state-dir "$SCRATCH/node2"
expect_one_line_error "loose identity permissions"
case "$ERR" in *"chmod 600"*) ;; *) fail "loose permissions message: $ERR" ;; esac

# Binary junk as a config file.
expect_status 0 "init" -- "$PILOT" init --hostname good --state-dir "$SCRATCH/node3"
head -c 2000 /dev/urandom > "$SCRATCH/node3/config"
expect_status 1 "junk config" -- "$PILOT" init --state-dir "$SCRATCH/node3"
expect_one_line_error "junk config"
# Config lines the agent cannot use: named by file and line, and it does not start.
expect_status 0 "init" -- "$PILOT" init --hostname good --state-dir "$SCRATCH/node4"
printf -- '--intervall 5\n' >> "$SCRATCH/node4/config"
expect_status 64 "misspelt config flag" -- "$PILOT" agent --state-dir "$SCRATCH/node4"
expect_one_line_error "misspelt config flag"
case "$ERR" in *"node4/config:"[0-9]*": Unknown option '--intervall'"*) ;; *) fail "misspelt config flag: $ERR" ;; esac
sed -i 's/^--intervall 5$/--check http:web=ftp:\/\/x/' "$SCRATCH/node4/config"
expect_status 64 "bad check line" -- "$PILOT" agent --state-dir "$SCRATCH/node4"
expect_one_line_error "bad check line"
case "$ERR" in *"node4/config:"[0-9]*": invalid check 'http:web=ftp://x': the target must be an http:// URL"*) ;; *) fail "bad check line: $ERR" ;; esac
[ -e "$SCRATCH/node4/pilot.sock" ] && fail "the agent started despite a bad config line"
echo "ok: every bad input got one clear line and a non-zero exit"
