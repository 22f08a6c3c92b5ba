#!/bin/sh
# At-least-once delivery between real processes: 10,000 messages published
# while the hub is killed with -9 and restarted midway reach a durable
# subscriber complete, each once; messages were provably in flight at the
# kill. Then a publisher whose hub is away spools, is itself killed, and
# delivers its spool when both return.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
start_fleet

"$PILOT" subscribe 'load/*' --durable audit --count 10100 --timeout 150 --state-dir "$SCRATCH/sub-01" > "$SCRATCH/durable.out" 2> "$SCRATCH/durable.err" &
SUB_PID=$!
PIDS="$PIDS $SUB_PID"
wait_until 15 "the durable subscription" -- hub_connections_at_least 1

# 10,000 numbered messages, paced over about 5 s so the kill lands mid-stream.
python3 -c '
import sys, time
for i in range(1, 10001):
    sys.stdout.write("{\"n\":%d,\"host\":\"web-01\"}\n" % i)
    if i % 100 == 0:
        sys.stdout.flush(); time.sleep(0.05)
' | "$PILOT" publish load/web-01 --stdin --state-dir "$SCRATCH/web-01" > "$SCRATCH/publish.out" 2> "$SCRATCH/publish.err" &
PUB_PID=$!
PIDS="$PIDS $PUB_PID"

received() { [ "$(wc -l < "$SCRATCH/durable.out")" -ge "$1" ]; }
wait_until 30 "2,000 messages at the subscriber before the kill" -- received 2000
# shellcheck disable=SC2154 # set by start_node
kill -9 "$hub_01_PID"
AT_KILL=$(wc -l < "$SCRATCH/durable.out")
sleep 2
SPOOLED_WHILE_DOWN=$(spool_count web-01 spooled)
start_node hub-01 "$HUB_PORT"
wait "$PUB_PID" || fail "publish --stdin failed: $(cat "$SCRATCH/publish.err")"
[ "$AT_KILL" -lt 10000 ] || fail "the kill came after every message had arrived ($AT_KILL)"
[ "$SPOOLED_WHILE_DOWN" -gt 0 ] || fail "no message was waiting in the spool while the hub was down"
spool_drained() { [ "$(spool_count web-01 spooled)" = 0 ]; }
wait_until 60 "the spool to drain after the restart" -- spool_drained

# The offline publisher: the hub goes away, web-01 spools 100 more, web-01 itself is killed,
# then both come back and the spool is delivered.
wait_until 60 "all 10,000 before the second part" -- received 10000
RESENT=$(spool_count web-01 resent)
HUB_DUPLICATES=$(hub_count duplicates)
# shellcheck disable=SC2154 # set by start_node
kill "$hub_01_PID"
python3 -c 'print("\n".join("{\"n\":%d,\"host\":\"web-01\"}" % i for i in range(10001, 10101)))' > "$SCRATCH/later"
expect_status 0 "publish while the hub is away" -- sh -c "\"$PILOT\" publish load/web-01 --stdin --state-dir \"$SCRATCH/web-01\" < \"$SCRATCH/later\""
case "$ERR" in *"spooled: hub-01 has not confirmed the 100 messages within 5 s"*"they go out when it answers"*) ;;
    *) fail "publish while the hub is away did not say the messages stay spooled: $ERR" ;; esac
[ "$(spool_count web-01 spooled)" = 100 ] || fail "web-01 did not keep 100 messages for the absent hub: $(spool_count web-01 spooled)"
# shellcheck disable=SC2154 # set by start_node
kill -9 "$web_01_PID"
start_node hub-01 "$HUB_PORT"
start_node web-01
wait "$SUB_PID" || fail "durable subscriber: $(cat "$SCRATCH/durable.err")"

python3 - "$SCRATCH/durable.out" <<'PY' || fail "durable subscriber output is wrong"
import json, sys
ns = [json.loads(line.split("] ", 1)[1])["n"] for line in open(sys.argv[1])]
missing = sorted(set(range(1, 10101)) - set(ns))
duplicates = len(ns) - len(set(ns))
assert not missing, "missing %d, first %s" % (len(missing), missing[:5])
assert duplicates == 0, "%d duplicates printed" % duplicates
assert len(ns) == 10100, len(ns)
PY
DISCARDED=$("$PILOT" status --json --state-dir "$SCRATCH/sub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['duplicates_discarded'])")
echo "ok: 10,100 of 10,100 delivered once; $AT_KILL had arrived at the kill, $SPOOLED_WHILE_DOWN spooled while the hub was down, $RESENT sent again after the hub's restart, of which the hub recognised $HUB_DUPLICATES as already stored, $DISCARDED duplicates discarded at the subscriber"
