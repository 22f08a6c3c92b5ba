#!/bin/sh
# The store as a durable subscriber: 3,000 numbered samples published
# through the hub while `pilot store` is killed with -9 and restarted
# midway; afterwards `pilot query` returns each of them exactly once with
# its value (nothing acknowledged was lost, nothing resent was counted
# twice), --step aggregates them, and promtool reads them through the
# store's Prometheus read API.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
start_registry
for node in hub-01 st-01 pub-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --interval 3600 \
    --http off --table-interval 0 --log-level notice
wait_until 10 "hub-01 registered" -- registered hub-01
API_PORT=$(free_port tcp)
start_store() {
    start_bg "$SCRATCH/st-01.log" "$PILOT" store --state-dir "$SCRATCH/st-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --interval 3600 \
        --http "127.0.0.1:$API_PORT" --log-level notice
    STORE_PID=$LAST_PID
}
"$PILOT" agent --state-dir "$SCRATCH/pub-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --interval 3600 --log-level notice > /dev/null 2> "$SCRATCH/pub-01.log" &
PIDS="$PIDS $!"
wait_until 10 "pub-01 registered" -- registered pub-01
expect_status 0 "handshake pub-01" -- "$PILOT" handshake hub-01 "metrics" --state-dir "$SCRATCH/pub-01"
# The store's node must be trusted before it can subscribe: start it once to register, then ask.
start_store
wait_until 15 "st-01 registered" -- registered st-01
expect_status 0 "handshake st-01" -- "$PILOT" handshake hub-01 "history" --state-dir "$SCRATCH/st-01"
subscribed() { "$PILOT" status --json --state-dir "$SCRATCH/hub-01" | grep -q '"store":'; }
wait_until 20 "the store's durable subscription at the hub" -- subscribed

FROM=1764100000
count() { "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 100000)) --json --state-dir "$SCRATCH/st-01" 2>/dev/null |
    python3 -c "import json,sys; s=json.load(sys.stdin); print(len(s[0]['points']) if s else 0)"; }
at_least() { [ "$(count)" -ge "$1" ]; }
python3 -c "
import sys, time
for i in range(3000):
    sys.stdout.write('metrics/cpu/sim-01 {\"host\":\"sim-01\",\"cpu_pct\":%.1f,\"load\":0.5,\"cores\":4,\"ts\":%d}\n' % (i % 1000 / 10, $FROM + i * 30))
    if i % 100 == 99:
        sys.stdout.flush(); time.sleep(0.1)
" | "$PILOT" publish --stdin --state-dir "$SCRATCH/pub-01" > /dev/null 2> "$SCRATCH/publish.err" &
PUB=$!
PIDS="$PIDS $PUB"
wait_until 30 "500 samples in the store" -- at_least 500
STORED_AT_KILL=$(count)
kill -9 "$STORE_PID"
sleep 1
start_store
wait "$PUB" || fail "publish: $(cat "$SCRATCH/publish.err")"
complete() { [ "$(count)" = 3000 ]; }
wait_until 60 "all 3,000 samples in the store" -- complete
expect_status 0 "query" -- "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 100000)) --json --state-dir "$SCRATCH/st-01"
printf '%s' "$OUT" | python3 -c "
import json, sys
series = json.load(sys.stdin)
assert len(series) == 1 and series[0]['labels'] == {'host': 'sim-01'}, series
points = series[0]['points']
assert [p[0] for p in points] == [($FROM + i * 30) * 1000 for i in range(3000)], 'timestamps differ'
assert [p[1] for p in points] == [round(i % 1000 / 10, 1) for i in range(3000)], 'values differ'
" || fail "the stored samples are not the published ones"
expect_status 0 "query with a step" -- "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 90000)) --step 1h --agg max --csv --state-dir "$SCRATCH/st-01"
[ "$(printf '%s\n' "$OUT" | head -2 | tail -1)" = "cpu_pct,host=sim-01,$FROM,11.9" ] || fail "step query: $(printf '%s\n' "$OUT" | head -3)"
# Prometheus's own client reads the history through the store's read API.
if command -v promtool > /dev/null; then
    expect_status 0 "promtool query range" -- promtool query range --start "$FROM" --end $((FROM + 600)) --step 30s \
        "http://127.0.0.1:$API_PORT" 'cpu_pct{host="sim-01"}'
    printf '%s\n' "$OUT" | grep -q '^0.3 @\[1764100090\]$' || fail "promtool query range: $(printf '%s\n' "$OUT" | head -5)"
    [ "$(printf '%s\n' "$OUT" | grep -c ' @\[')" = 21 ] || fail "promtool: not 21 points: $OUT"
    expect_status 0 "promtool query instant" -- promtool query instant --time $((FROM + 600)) "http://127.0.0.1:$API_PORT" 'max_over_time(cpu_pct{host="sim-01"}[5m])'
    printf '%s' "$OUT" | grep -q '=> 2 @\[1764100600\]' || fail "promtool max_over_time: $OUT"
elif [ "${CI:-}" = true ]; then
    fail "promtool is missing (apt-get install prometheus)"
fi
echo "ok: 3,000 of 3,000 samples stored once across a kill -9 of the store ($STORED_AT_KILL queryable just before the kill); --step --agg --csv; promtool query range and instant through the read API"
