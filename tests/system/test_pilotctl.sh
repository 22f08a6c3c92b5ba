#!/bin/sh
# pilotctl, a link to pilot, runs the monitoring guide's sequence unchanged
# against a registry, a beacon and a hub (pilot aggregator, which announces
# itself): init, daemon start with registry and beacon and no hub, set-tags,
# handshake with the aggregator (approved: both hold the join token),
# publish in the guide's form and with the hub first, subscribe read line
# by line by a Python reader that sees each message within a second, peers
# in the guide's line format byte for byte, --json anywhere, the exit
# statuses (0, 1 for an error, 2 for usage), daemon status and stop. A
# `pilot agent` with no hub finds the same hub and delivers its metrics.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command python3 python3
TOKEN="$SCRATCH/token"
printf 'guide-fleet-token-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$TOKEN"
chmod 600 "$TOKEN"

start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" --join-token "@$TOKEN" --log-level warning
wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
start_bg "$SCRATCH/beacon.log" "$PILOT" beacon --listen 127.0.0.1:0 --state-dir "$SCRATCH/beacon" --registry "$REGISTRY" --log-level warning
wait_until 10 "beacon address" -- test -s "$SCRATCH/beacon/beacon.addr"
BEACON=$(cat "$SCRATCH/beacon/beacon.addr")
registered() { "$PILOT" status --json --state-dir "$SCRATCH/$1" 2>/dev/null | grep -q '"registered":true'; }

"$PILOT" init --hostname metrics-aggregator --registry "$REGISTRY" --join-token "@$TOKEN" --state-dir "$SCRATCH/hub" > /dev/null || fail "init the hub"
start_bg "$SCRATCH/hub.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub" --tunnel-listen 127.0.0.1:0 --keepalive 1 --no-metrics \
    --table-interval 0 --http off --log-level notice
wait_until 10 "the hub registered" -- registered hub

# The guide's host, through the link, with no --state-dir on any line.
mkdir -p "$SCRATCH/bin"
ln -s "$PILOT" "$SCRATCH/bin/pilotctl"
PILOTCTL="$SCRATCH/bin/pilotctl"
PILOT_STATE_DIR="$SCRATCH/web"
export PILOT_STATE_DIR
expect_status 0 "pilotctl init" -- "$PILOTCTL" init --hostname web-server-04 --join-token "@$TOKEN"
expect_status 1 "daemon status before start" -- "$PILOTCTL" daemon status
[ "$OUT" = "daemon not running" ] || fail "daemon status before start printed: $OUT"
expect_status 0 "daemon start" -- "$PILOTCTL" daemon start --registry "$REGISTRY" --beacon "$BEACON" --tunnel-listen 127.0.0.1:0 --keepalive 1
DAEMON_PID=$(cat "$PILOT_STATE_DIR/daemon.pid")
PIDS="$PIDS $DAEMON_PID"
printf '%s\n' "$OUT" | grep -Eqx "daemon started \(pid $DAEMON_PID\): 1:0001\.0000\.[0-9a-f]{4} web-server-04, registered with $REGISTRY" \
    || fail "daemon start printed: $OUT"
ADDRESS=$(printf '%s\n' "$OUT" | sed 's/.*: \(1:[0-9a-f.]*\) .*/\1/')
grep -q "registered" "$PILOT_STATE_DIR/daemon.log" || fail "the daemon's log is not in daemon.log"
expect_status 0 "daemon start again" -- "$PILOTCTL" daemon start --registry "$REGISTRY"
case "$OUT" in "daemon already running (pid $DAEMON_PID): $ADDRESS web-server-04"*) ;; *) fail "a second daemon start printed: $OUT" ;; esac
expect_status 0 "daemon status" -- "$PILOTCTL" daemon status
case "$OUT" in "daemon running (pid $DAEMON_PID): $ADDRESS web-server-04, registered with $REGISTRY") ;; *) fail "daemon status printed: $OUT" ;; esac

expect_status 0 "set-tags" -- "$PILOTCTL" set-tags monitoring server web
[ "$OUT" = "tags: [monitoring, server, web]" ] || fail "set-tags printed: $OUT"
expect_status 0 "handshake with the aggregator" -- "$PILOTCTL" handshake metrics-aggregator "Monitoring agent for web-server-04"

# peers in the guide's columns, byte for byte.
expect_status 0 "peers --search tag:web" -- "$PILOTCTL" peers --search tag:web
WANT=$(printf '%-18s%-17s%-43s%s' "$ADDRESS" web-server-04 "[monitoring, server, web]" online)
[ "$OUT" = "$WANT" ] || fail "peers printed
$OUT
wanted
$WANT"
expect_status 0 "peers of the hub's tag" -- "$PILOTCTL" peers --search tag:pilot-hub
case "$OUT" in *"metrics-aggregator "*"[pilot-hub]"*online) ;; *) fail "the aggregator does not announce itself: $OUT" ;; esac
expect_status 0 "--json at the end" -- "$PILOTCTL" peers --search tag:web --json
printf '%s' "$OUT" | python3 -c 'import json,sys; nodes=json.load(sys.stdin); assert [n["hostname"] for n in nodes] == ["web-server-04"], nodes' \
    || fail "peers --json: $OUT"
expect_status 0 "--json first" -- "$PILOTCTL" --json daemon status
printf '%s' "$OUT" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["running"] and s["pid"] > 1 and s["hostname"] == "web-server-04", s' \
    || fail "--json daemon status: $OUT"

# Exit statuses: usage 2, error 1, each one line.
expect_status 2 "an unknown verb" -- "$PILOTCTL" frobnicate
expect_one_line_error "an unknown verb"
expect_status 2 "publish without --data" -- "$PILOTCTL" publish metrics/cpu/web-server-04
expect_one_line_error "publish without --data"
case "$ERR" in "pilotctl publish: "*) ;; *) fail "publish's usage error is not named pilotctl: $ERR" ;; esac
expect_status 1 "publish with a payload that is not JSON" -- "$PILOTCTL" publish metrics/cpu/web-server-04 --data 'not json'
expect_one_line_error "publish with a payload that is not JSON"
expect_status 1 "publish to a hub that does not exist" -- "$PILOTCTL" publish no-such-hub metrics/cpu/web-server-04 --data '{"cpu_pct":1}'
expect_one_line_error "publish to a hub that does not exist"

# subscribe, read as the guide's Python aggregator reads it; publish in both forms.
python3 - "$PILOTCTL" <<'PY' || fail "the Python reader of pilotctl subscribe"
import json, select, subprocess, sys, time
pilotctl = sys.argv[1]
reader = subprocess.Popen([pilotctl, "subscribe", "metrics/*"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
try:
    time.sleep(2)  # the subscription reaches the hub
    delays = []
    for i in range(5):
        topic = "metrics/cpu/web-server-04"
        payload = json.dumps({"host": "web-server-04", "cpu_pct": 10 + i, "seq": i}, separators=(",", ":"))
        hub_first = i % 2 == 1
        began = time.monotonic()
        words = [pilotctl, "publish"] + (["metrics-aggregator"] if hub_first else []) + [topic, "--data", payload]
        published = subprocess.run(words, capture_output=True, text=True, timeout=10)
        if published.returncode != 0 or published.stdout or published.stderr:
            sys.exit(f"publish {i} exited {published.returncode}, printed {published.stdout!r} and {published.stderr!r}")
        ready, _, _ = select.select([reader.stdout], [], [], max(0.0, began + 1.0 - time.monotonic()))
        if not ready:
            sys.exit(f"message {i} did not reach the subscriber within 1 s of its publication")
        line = reader.stdout.readline().rstrip("\n")
        delays.append(time.monotonic() - began)
        if line != f"[{topic}] {payload}":
            sys.exit(f"the subscriber printed {line!r}, wanted {f'[{topic}] {payload}'!r}")
    print("pilotctl subscribe: 5 messages, publish to line at most %.0f ms" % (max(delays) * 1000))
finally:
    reader.terminate()
    reader.wait(timeout=10)
PY
# The hub-first form of subscribe, bounded.
"$PILOTCTL" subscribe metrics-aggregator "metrics/*" --count 1 --timeout 20s > "$SCRATCH/one.txt" 2> "$SCRATCH/one.err" &
SUB_PID=$!
PIDS="$PIDS $SUB_PID"
sleep 2
"$PILOTCTL" publish metrics/mem/web-server-04 --data '{"host":"web-server-04","mem_pct":42}' > /dev/null || fail "publish metrics/mem"
wait "$SUB_PID" || fail "subscribe HUB FILTER --count 1: $(cat "$SCRATCH/one.err")"
[ "$(cat "$SCRATCH/one.txt")" = '[metrics/mem/web-server-04] {"host":"web-server-04","mem_pct":42}' ] || fail "subscribe HUB FILTER printed: $(cat "$SCRATCH/one.txt")"

# pilot agent with no hub configured finds the announced one and delivers.
unset PILOT_STATE_DIR
"$PILOT" init --hostname db-01 --registry "$REGISTRY" --join-token "@$TOKEN" --state-dir "$SCRATCH/db" > /dev/null || fail "init db-01"
start_bg "$SCRATCH/db.log" "$PILOT" agent --state-dir "$SCRATCH/db" --tunnel-listen 127.0.0.1:0 --keepalive 1 --interval 1 --log-level notice
wait_until 10 "db-01 registered" -- registered db
"$PILOT" handshake metrics-aggregator "db-01's metrics" --state-dir "$SCRATCH/db" > /dev/null || fail "db-01's handshake"
db_delivered() {
    "$PILOT" status --json --state-dir "$SCRATCH/db" | python3 -c "
import json,sys
spools=[s for s in json.load(sys.stdin)['events']['spools'] if s['hub']=='metrics-aggregator']
sys.exit(0 if spools and spools[0]['acknowledged'] > 0 else 1)"
}
wait_until 20 "db-01's metrics acknowledged by the hub it found at the registry" -- db_delivered

export PILOT_STATE_DIR="$SCRATCH/web"
expect_status 0 "daemon stop" -- "$PILOTCTL" daemon stop
[ "$OUT" = "daemon stopped (pid $DAEMON_PID)" ] || fail "daemon stop printed: $OUT"
# (Not kill -0: the daemon's parent is gone, and whoever adopted it may not have reaped it yet.)
if [ -e "/proc/$DAEMON_PID" ] && ! grep -q ') Z' "/proc/$DAEMON_PID/stat"; then fail "the daemon still runs after daemon stop"; fi
[ ! -e "$PILOT_STATE_DIR/daemon.pid" ] || fail "daemon stop left its pid file"
expect_status 1 "daemon status after stop" -- "$PILOTCTL" daemon status
expect_status 0 "daemon stop when stopped" -- "$PILOTCTL" daemon stop
[ "$OUT" = "daemon not running" ] || fail "a second daemon stop printed: $OUT"
expect_status 1 "publish with no daemon" -- "$PILOTCTL" publish metrics/cpu/web-server-04 --data '{"cpu_pct":1}'
expect_one_line_error "publish with no daemon"
echo "ok: pilotctl runs the guide's sequence (init, daemon start/status/stop, set-tags, handshake, publish both forms, subscribe line by line, peers byte for byte, --json, exit 0/1/2); pilot agent finds the announced hub"
