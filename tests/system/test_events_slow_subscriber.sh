#!/bin/sh
# A plain subscriber whose node is stopped (SIGSTOP) while 200,000 messages
# flow, until the hub's tunnel gives up on it and resets its stream, comes
# back told what it missed: every message is either printed or counted in
# a DROP line, the hub's dropped_slow counts them, and the subscription is
# live again afterwards.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
start_fleet

BEFORE=1000
DURING=200000
AFTER=10
TOTAL=$((BEFORE + DURING + AFTER))
"$PILOT" subscribe 'load/*' --state-dir "$SCRATCH/sub-01" > "$SCRATCH/plain.out" 2> "$SCRATCH/plain.err" &
PIDS="$PIDS $!"
wait_until 15 "the plain subscription at the hub (and its own publisher)" -- hub_connections_at_least 2
numbered() { python3 -c 'import sys; print("\n".join("{\"n\":%d,\"host\":\"web-01\"}" % i for i in range(int(sys.argv[1]), int(sys.argv[2]) + 1)))' "$1" "$2"; }
publish_range() { numbered "$1" "$2" > "$SCRATCH/batch" && "$PILOT" publish load/web-01 --stdin --state-dir "$SCRATCH/web-01" < "$SCRATCH/batch" > /dev/null 2>&1; }
printed() { grep -c '^\[load/' "$SCRATCH/plain.out" || true; }
printed_at_least() { [ "$(printed)" -ge "$1" ]; }

publish_range 1 "$BEFORE" || fail "publish the first $BEFORE"
wait_until 15 "the first $BEFORE at the subscriber" -- printed_at_least "$BEFORE"
CONNECTIONS=$(hub_count connections)

# shellcheck disable=SC2154 # set by start_node
kill -STOP "$sub_01_PID"
publish_range $((BEFORE + 1)) $((BEFORE + DURING)) || fail "publish $DURING while the subscriber is stopped"
spool_drained() { [ "$(spool_count web-01 spooled)" = 0 ]; }
wait_until 30 "the hub to store all $DURING" -- spool_drained
# The hub's tunnel resets a stream whose peer has not answered for 20 s.
gave_up() { [ "$(hub_count connections)" -lt "$CONNECTIONS" ]; }
wait_until 40 "the hub to give up on the stopped subscriber's stream" -- gave_up
kill -CONT "$sub_01_PID"

dropped() { sed -n 's/^pilot subscribe: \([0-9][0-9]*\) messages dropped.*/\1/p' "$SCRATCH/plain.err" | awk '{ s += $1 } END { print s + 0 }'; }
accounted() { [ $(($(printed) + $(dropped))) -ge $((BEFORE + DURING)) ]; }
wait_until 30 "every message printed or counted as dropped" -- accounted
# Live again: what is published now arrives.
publish_range $((BEFORE + DURING + 1)) "$TOTAL" || fail "publish after the resume"
last_arrived() { grep -q "\"n\":$TOTAL," "$SCRATCH/plain.out"; }
wait_until 30 "the messages published after the resume" -- last_arrived

PRINTED=$(printed)
DROPPED=$(dropped)
SLOW=$(hub_count dropped_slow)
[ "$DROPPED" -gt 0 ] || fail "the hub's reset cost nothing? printed $PRINTED of $TOTAL"
[ $((PRINTED + DROPPED)) = "$TOTAL" ] || fail "printed $PRINTED and told of $DROPPED dropped, but $TOTAL were published"
[ "$SLOW" -ge "$DROPPED" ] || fail "the hub's dropped_slow ($SLOW) is less than the subscriber was told ($DROPPED)"
python3 - "$SCRATCH/plain.out" "$TOTAL" <<'PY' || fail "the printed messages are wrong"
import json, sys
ns = [json.loads(line.split("] ", 1)[1])["n"] for line in open(sys.argv[1]) if line.startswith("[load/")]
assert len(ns) == len(set(ns)), "%d duplicates" % (len(ns) - len(set(ns)))
assert ns == sorted(ns), "out of order"
assert ns[-int(10):] == list(range(int(sys.argv[2]) - 9, int(sys.argv[2]) + 1)), ns[-10:]
PY
echo "ok: $TOTAL published, $PRINTED printed and $DROPPED told as dropped (DROP lines) after the stopped subscriber's stream was reset; dropped_slow $SLOW; live again after"
