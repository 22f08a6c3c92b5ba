#!/bin/sh
# The store as a durable subscriber, killed with -9 during a steady ingest
# of 3,000 numbered samples. The hub's cursor for the store says what the
# store had acknowledged at the kill; an audit subscriber maps the hub's log
# positions to samples. With the hub stopped (so nothing can be sent again),
# the restarted store must already hold every acknowledged sample; with the
# hub back it gets the rest, each stored once with its value. Then --step
# aggregates, and promtool reads the history through the read API.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
# shellcheck source=tests/system/store_fleet.sh
. "$(dirname "$0")/store_fleet.sh"
require_command python3 python3
start_store_fleet

# Every sim-01 message with its place in the hub's log (durable: it sees them all, across the hub's restart).
"$PILOT" subscribe 'metrics/cpu/sim-01' --from hub-01 --durable audit --json --state-dir "$SCRATCH/pub-01" > "$SCRATCH/audit.jsonl" 2> "$SCRATCH/audit.err" &
PIDS="$PIDS $!"
audit_subscribed() { "$PILOT" status --json --state-dir "$SCRATCH/hub-01" | grep -q '"audit":'; }
wait_until 20 "the audit subscription at the hub" -- audit_subscribed

# Two days ago, on the hour (the 1 h step below starts there): within raw retention.
FROM=$(( $(date +%s) / 3600 * 3600 - 172800 ))
# stored_points FILE: the store's sim-01 cpu points as JSON in FILE; prints how many.
stored_points() {
    "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 100000)) --json --state-dir "$SCRATCH/st-01" > "$1" 2>/dev/null &&
        python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(len(s[0]['points']) if s else 0)" "$1"
}
at_least() { n=$(stored_points "$SCRATCH/points.json") && [ "$n" -ge "$1" ]; }
publish_cpu 3000 "$FROM" 30
wait_until 30 "500 samples in the store" -- at_least 500
kill -9 "$STORE_PID"
wait "$STORE_PID" 2>/dev/null || true
# What the store had acknowledged: the hub's cursor for it, now that nothing can move it.
ACKED=$("$PILOT" status --json --state-dir "$SCRATCH/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['durable']['store'])") ||
    fail "cannot read the hub's cursor for the store"
# Stop the hub, so the restarted store can only show what its own file kept.
kill "$HUB_PID"
wait "$HUB_PID" 2>/dev/null || true
start_store
wait_until 15 "the restarted store to answer" -- stored_points "$SCRATCH/alone.json"
start_hub
wait "$PUB" || fail "publish: $(cat "$SCRATCH/publish.err")"
complete() { [ "$(stored_points "$SCRATCH/points.json")" = 3000 ]; }
wait_until 60 "all 3,000 samples in the store" -- complete
audited() { python3 -c "import json,sys; print(len({json.loads(l)['id'] for l in open(sys.argv[1]) if l.strip()}))" "$SCRATCH/audit.jsonl" | grep -qx 3000; }
wait_until 30 "the audit subscriber to see all 3,000" -- audited
python3 - "$SCRATCH/audit.jsonl" "$SCRATCH/alone.json" "$SCRATCH/points.json" "$ACKED" "$FROM" <<'PY' || fail "the store lost acknowledged samples or stored the wrong ones"
import json, sys
audit, alone, final, acked, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
position = {}
for line in open(audit):
    if line.strip():
        message = json.loads(line)
        position[message['payload']['ts'] * 1000] = message['id']
acknowledged = {ts for ts, id in position.items() if id <= acked}
kept = json.load(open(alone))
kept = {p[0] for p in kept[0]['points']} if kept else set()
missing = sorted(acknowledged - kept)
assert 0 < len(acknowledged) < 3000, f"{len(acknowledged)} acknowledged at the kill: the kill was not during the ingest"
assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged samples missing after the restart, first {missing[:5]}"
series = json.load(open(final))
assert len(series) == 1 and series[0]['labels'] == {'host': 'sim-01'}, series
points = series[0]['points']
assert [p[0] for p in points] == [(start + i * 30) * 1000 for i in range(3000)], 'timestamps differ'
assert [p[1] for p in points] == [round(i % 1000 / 10, 1) for i in range(3000)], 'values differ'
print(f"{len(acknowledged)} acknowledged at the kill, all kept; {len(kept)} in the file")
PY
expect_status 0 "query with a step" -- "$PILOT" query cpu_pct --host sim-01 --from "$FROM" --to $((FROM + 90000)) --step 1h --agg max --csv --state-dir "$SCRATCH/st-01"
[ "$(printf '%s\n' "$OUT" | head -2 | tail -1)" = "cpu_pct,host=sim-01,$FROM,11.9" ] || fail "step query: $(printf '%s\n' "$OUT" | head -3)"
# Prometheus's own client reads the history through the store's read API.
if command -v promtool > /dev/null; then
    expect_status 0 "promtool query range" -- promtool query range --start "$FROM" --end $((FROM + 600)) --step 30s \
        "http://127.0.0.1:$API_PORT" 'cpu_pct{host="sim-01"}'
    printf '%s\n' "$OUT" | python3 -c "
import sys
points = [line.split(' @[') for line in sys.stdin.read().splitlines() if ' @[' in line]
got = [(float(value), int(at.rstrip(']'))) for value, at in points]
assert got == [(i / 10, $FROM + i * 30) for i in range(21)], got
" || fail "promtool query range: $(printf '%s\n' "$OUT" | head -5)"
    expect_status 0 "promtool query instant" -- promtool query instant --time $((FROM + 600)) "http://127.0.0.1:$API_PORT" 'max_over_time(cpu_pct{host="sim-01"}[5m])'
    printf '%s' "$OUT" | grep -q "=> 2 @\[$((FROM + 600))\]" || fail "promtool max_over_time: $OUT"
elif [ "${CI:-}" = true ]; then
    fail "promtool is missing (apt-get install prometheus)"
fi
echo "ok: kill -9 of the store during ingest: every sample the hub had as acknowledged ($ACKED) was in the file with the hub stopped; all 3,000 stored once after; --step --agg --csv; promtool range and instant"
