#!/bin/sh
# `pilot up`, the embedded default: registry, beacon, aggregator, store and
# this host's agent in one process; it says where everything is, prints the
# fleet table with this host's figures, answers /api/hosts and /metrics,
# `pilot subscribe` on its node gets this host's metrics, and `pilot query`
# and the read API return their history.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command curl curl
require_command python3 python3
PORT=$(free_port tcp)
"$PILOT" up --state-dir "$SCRATCH/up" --http "127.0.0.1:$PORT" --interval 1 --table-interval 2 --for 20 --log-level warning > "$SCRATCH/up.out" 2> "$SCRATCH/up.err" &
UP_PID=$!
PIDS="$PIDS $UP_PID"
host_listed() { curl -sf "http://127.0.0.1:$PORT/api/hosts" | grep -q '"up":true'; }
wait_until 15 "this host in /api/hosts" -- host_listed
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -q '^pilot_cpu_pct{host="' || fail "/metrics has no cpu_pct"
# Every verb given pilot up's --state-dir reaches its node.
expect_status 0 "status with pilot up's state directory" -- "$PILOT" status --state-dir "$SCRATCH/up"
expect_status 0 "subscribe on the up node" -- "$PILOT" subscribe 'metrics/cpu/*' --count 2 --timeout 10 --state-dir "$SCRATCH/up"
printf '%s' "$OUT" | grep -q '^\[metrics/cpu/[^]]*\] {"host":' || fail "subscribe: $OUT"
history() {
    "$PILOT" query cpu_pct --since 1h --json --state-dir "$SCRATCH/up" |
        python3 -c "import json,sys; s=json.load(sys.stdin); assert s and len(s[0]['points']) >= 3 and 0 <= s[0]['points'][-1][1] <= 100, s"
}
wait_until 15 "three cpu_pct points in the store" -- history
API=$(sed -n 's|^  history     http://\([^/]*\)/api/v1/query_range.*|\1|p' "$SCRATCH/up.out")
[ -n "$API" ] || fail "the banner lacks the store's read API: $(cat "$SCRATCH/up.out")"
curl -sf "http://$API/api/v1/query" --data-urlencode 'query=max_over_time(cpu_pct[1m])' | grep -q '"resultType":"vector","result":\[{' ||
    fail "the read API has no cpu_pct"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data '{}' "http://$API/api/v1/query")
[ "$code" = 415 ] || fail "a JSON POST got HTTP $code, not 415"
wait "$UP_PID" || fail "pilot up exited non-zero: $(cat "$SCRATCH/up.err")"
grep -q "^pilot up: everything on loopback, state in $SCRATCH/up$" "$SCRATCH/up.out" || fail "no banner: $(head -3 "$SCRATCH/up.out")"
grep -q "fleet API   http://127.0.0.1:$PORT/api/hosts" "$SCRATCH/up.out" || fail "the banner lacks the API address"
grep -Eq '^[a-z0-9.-]+ +[0-9]+\.[0-9]% +[0-9]+\.[0-9]% +[0-9]+\.[0-9]% +[0-9]+s ago$' "$SCRATCH/up.out" || fail "no fleet table row: $(cat "$SCRATCH/up.out")"
echo "ok: pilot up ran a fleet of one: banner, fleet table, /api/hosts, /metrics, subscribe, pilot query and the read API"
