#!/bin/sh
# Graceful shutdown: `pilot agent`, `pilot aggregator` and `pilot up` each
# get SIGTERM while messages flow; each exits 0 within the 10 s bound with
# its control socket gone, and after a restart every publication that was
# acknowledged arrives downstream exactly once. A publisher whose hub stops
# answering while it drains exits 1 at the bound naming what it waited for;
# a second SIGTERM ends it within 1 s.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3

NODE_FLAGS="--no-metrics" # read by start_node
start_registry
for node in hub-01 web-01 sub-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/$node" --join-token fleet-secret-1 > /dev/null || fail "init $node"
done
HUB_PORT=$(free_port udp)
start_hub() {
    start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen "127.0.0.1:$HUB_PORT" --keepalive 1 \
        --no-metrics --http off --table-interval 0 --log-level notice
    HUB_PID=$LAST_PID
}
start_hub
start_node web-01
start_node sub-01
for node in hub-01 web-01 sub-01; do wait_until 10 "$node registered" -- registered "$node"; done
for node in web-01 sub-01; do expect_status 0 "handshake $node" -- "$PILOT" handshake hub-01 "events" --state-dir "$SCRATCH/$node"; done

"$PILOT" subscribe 'load/*' --durable audit --timeout 300 --state-dir "$SCRATCH/sub-01" > "$SCRATCH/audit.out" 2> "$SCRATCH/audit.err" &
PIDS="$PIDS $!"
wait_until 15 "the durable subscription" -- hub_connections_at_least 1

# publish_batches FIRST LAST: batch k is 100 messages {"n": k*100+i}; each
# batch the node acknowledged (spooled) is appended to $SCRATCH/acked.
publish_batches() {
    k=$1
    while [ "$k" -le "$2" ]; do
        python3 -c "import sys; k=int(sys.argv[1]); print('\n'.join('{\"n\":%d}' % (k * 100 + i) for i in range(100)))" "$k" > "$SCRATCH/batch"
        if "$PILOT" publish load/web-01 --stdin --state-dir "$SCRATCH/web-01" < "$SCRATCH/batch" > /dev/null 2>&1; then
            echo "$k" >> "$SCRATCH/acked"
        fi
        k=$((k + 1))
    done
}
: > "$SCRATCH/acked"
received_at_least() { [ "$(wc -l < "$SCRATCH/audit.out")" -ge "$1" ]; }

# stop_gracefully PID NAME SOCKET: SIGTERM, then exit 0 within 10 s and no socket file.
stop_gracefully() {
    started=$(date +%s)
    kill -TERM "$1"
    set +e
    wait "$1"
    status=$?
    set -e
    took=$(($(date +%s) - started))
    [ "$status" = 0 ] || fail "$2 exited $status after SIGTERM (stderr: $(tail -3 "$SCRATCH/$2.log"))"
    [ "$took" -le 10 ] || fail "$2 took ${took}s to stop, past the 10 s bound"
    [ ! -e "$3" ] || fail "$2 left its control socket $3"
    STOP_TOOK=$took
}

# The agent, stopped while it publishes.
publish_batches 1 40 &
PUBLISHER=$!
PIDS="$PIDS $PUBLISHER"
wait_until 30 "500 messages at the subscriber" -- received_at_least 500
# shellcheck disable=SC2154 # set by start_node
stop_gracefully "$web_01_PID" web-01 "$SCRATCH/web-01/pilot.sock"
AGENT_TOOK=$STOP_TOOK
wait "$PUBLISHER" || true
start_node web-01
wait_until 10 "web-01 registered again" -- registered web-01

# The aggregator (the hub), stopped while web-01 publishes; restarted.
publish_batches 41 80 &
PUBLISHER=$!
PIDS="$PIDS $PUBLISHER"
wait_until 30 "a further 500 at the subscriber" -- received_at_least "$(($(wc -l < "$SCRATCH/audit.out") + 500))"
stop_gracefully "$HUB_PID" hub-01 "$SCRATCH/hub-01/pilot.sock"
HUB_TOOK=$STOP_TOOK
sleep 1
start_hub
wait "$PUBLISHER" || true

# check_delivered: every acknowledged batch exactly once at the subscriber.
check_delivered() {
    python3 - "$SCRATCH/audit.out" "$SCRATCH/acked" <<'PY'
import json, sys
ns = [json.loads(line.split("] ", 1)[1])["n"] for line in open(sys.argv[1]) if line.startswith("[")]
acked = {int(k) * 100 + i for k in open(sys.argv[2]).read().split() for i in range(100)}
missing = sorted(acked - set(ns))
duplicates = len(ns) - len(set(ns))
if duplicates:
    print("%d duplicates" % duplicates); sys.exit(2)
if missing:
    print("missing %d, first %s" % (len(missing), missing[:3])); sys.exit(1)
PY
}
wait_until 60 "every acknowledged batch at the subscriber" -- check_delivered
[ "$(wc -l < "$SCRATCH/acked")" -ge 40 ] || fail "too few batches were acknowledged to tell anything: $(wc -l < "$SCRATCH/acked")"

# Held up: the hub stops answering while web-01 drains its spool.
spool_drained() { [ "$(spool_count web-01 spooled)" = 0 ]; }
wait_until 30 "web-01's spool drained" -- spool_drained
kill -STOP "$HUB_PID"
publish_batches 81 81
[ "$(spool_count web-01 spooled)" -gt 0 ] || fail "nothing waited in web-01's spool for the stopped hub"
started=$(date +%s)
kill -TERM "$web_01_PID"
sleep 3
kill -0 "$web_01_PID" 2>/dev/null || fail "web-01 stopped at once although its hub had not acknowledged its spool"
set +e
wait "$web_01_PID"
status=$?
set -e
took=$(($(date +%s) - started))
[ "$status" != 0 ] || fail "web-01 exited 0 although it could not drain its spool"
HELD_STATUS=$status
if [ "$took" -lt 9 ] || [ "$took" -gt 13 ]; then fail "web-01 stopped after ${took}s, not at the 10 s bound"; fi
grep -q "did not stop within 10" "$SCRATCH/web-01.log" || fail "no line says the bound passed: $(tail -2 "$SCRATCH/web-01.log")"
grep -q "hub-01 to acknowledge" "$SCRATCH/web-01.log" || fail "the line does not name the spool it waited for: $(tail -1 "$SCRATCH/web-01.log")"
[ ! -e "$SCRATCH/web-01/pilot.sock" ] || fail "web-01 left its control socket after the bound"

# A second SIGTERM while it waits ends it within 1 s.
kill -CONT "$HUB_PID"
start_node web-01
wait_until 30 "web-01's spool drained after the restart" -- spool_drained
kill -STOP "$HUB_PID"
publish_batches 82 82
kill -TERM "$web_01_PID"
sleep 1
kill -0 "$web_01_PID" 2>/dev/null || fail "web-01 did not wait for its hub before the second signal"
kill -TERM "$web_01_PID"
tries=10
while kill -0 "$web_01_PID" 2>/dev/null && [ "$tries" -gt 0 ]; do sleep 0.1; tries=$((tries - 1)); done
kill -0 "$web_01_PID" 2>/dev/null && fail "web-01 still ran 1 s after a second SIGTERM"
set +e
wait "$web_01_PID"
status=$?
set -e
[ "$status" != 0 ] || fail "web-01 exited 0 after a second SIGTERM cut its shutdown short"
grep -q "again; stopping at once" "$SCRATCH/web-01.log" || fail "no line says the second signal ended it: $(tail -1 "$SCRATCH/web-01.log")"
kill -CONT "$HUB_PID"
start_node web-01
wait_until 60 "every acknowledged batch after the held-up stops" -- check_delivered

# pilot up, stopped while the store takes messages; restarted, the store
# has each acknowledged sample once and was sent nothing twice.
UP="$SCRATCH/up"
start_bg "$SCRATCH/up.log" "$PILOT" up --state-dir "$UP" --interval 1h --http 127.0.0.1:0 --log-level notice
UP_PID=$LAST_PID
wait_until 20 "pilot up's node" -- "$PILOT" status --state-dir "$UP/node"
FROM=$(($(date +%s) - 100000))
: > "$SCRATCH/up-acked"
publish_up() {
    k=$1
    while [ "$k" -le "$2" ]; do
        python3 -c "import sys; k,f=int(sys.argv[1]),int(sys.argv[2]); print('\n'.join('{\"host\":\"sim-01\",\"cpu_pct\":%d,\"ts\":%d}' % (k*100+i, f+k*100+i) for i in range(100)))" "$k" "$FROM" > "$SCRATCH/up-batch"
        if "$PILOT" publish metrics/cpu/sim-01 --stdin --state-dir "$UP/node" < "$SCRATCH/up-batch" > /dev/null 2>&1; then echo "$k" >> "$SCRATCH/up-acked"; fi
        k=$((k + 1))
    done
}
publish_up 0 200 &
PUBLISHER=$!
PIDS="$PIDS $PUBLISHER"
up_acked_at_least() { [ "$(wc -l < "$SCRATCH/up-acked")" -ge "$1" ]; }
wait_until 30 "10 batches into pilot up" -- up_acked_at_least 10
stop_gracefully "$UP_PID" up "$UP/node/pilot.sock"
UP_TOOK=$STOP_TOOK
wait "$PUBLISHER" || true
start_bg "$SCRATCH/up.log" "$PILOT" up --state-dir "$UP" --interval 1h --http 127.0.0.1:0 --log-level notice
wait_until 20 "pilot up's node again" -- "$PILOT" status --state-dir "$UP/node"
store_has_acked() {
    "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 30000)) --json --state-dir "$UP/node" > "$SCRATCH/up-query" 2>/dev/null || return 1
    python3 - "$SCRATCH/up-query" "$SCRATCH/up-acked" "$FROM" <<'PY'
import json, sys
series = json.load(open(sys.argv[1]))
stored = {int(p[0]) // 1000 - int(sys.argv[3]) for s in series for p in s["points"]}
acked = {int(k) * 100 + i for k in open(sys.argv[2]).read().split() for i in range(100)}
sys.exit(0 if acked <= stored else 1)
PY
}
wait_until 30 "every acknowledged sample in pilot up's store" -- store_has_acked
DUPLICATES=$("$PILOT" status --json --state-dir "$UP/node" | python3 -c "import json,sys; print(json.load(sys.stdin)['store']['duplicates'])")
[ "$DUPLICATES" = 0 ] || fail "after the restart the store was sent $DUPLICATES samples it already had: acknowledgements were lost at the stop"
echo "ok: SIGTERM stopped the agent in ${AGENT_TOOK}s, the aggregator in ${HUB_TOOK}s and pilot up in ${UP_TOOK}s, each exit 0 with its socket gone; $(wc -l < "$SCRATCH/acked") acknowledged batches delivered once; a stalled hub held a stop to the 10 s bound (exit $HELD_STATUS, naming the spool), a second SIGTERM ended one at once; pilot up's store had $(wc -l < "$SCRATCH/up-acked") acknowledged batches and no resend"
