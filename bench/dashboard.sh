#!/bin/sh
# The dashboard benchmark of `make bench`, in the same headless chromium as
# the tests: `pilot up` with HOSTS hosts in its fleet (simulated publishers
# through one node, the agent's eight messages each) and 30 days of one
# host's history in its store (seeded every 30 s before it starts).
# Reports, median of RUNS loads each, the time from navigation start to the
# page's own mark: the fleet page with every row drawn, the host page (30
# days) with every chart drawn; and the bytes of the fleet's JSON, whole and
# as the changes after 1 % of the hosts published again.
#
#   sh bench/dashboard.sh [PILOT] [PILOT_BENCH] [HOSTS] [RUNS]
set -eu
PILOT=${1:-./pilot}
BENCH=${2:-.build/release/pilot-bench}
HOSTS=${3:-1000}
RUNS=${4:-5}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
BENCH_NAME=dashboard
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, with python3-selenium
DRIVER="$(dirname "$0")/../tests/system/dashboard_browser.py"
SIMULATED=$((HOSTS - 2)) # and the hub's own agent and the publishing node's

mkdir -p "$S/up/node" && chmod 700 "$S/up" "$S/up/node"
"$BENCH" seed-history --db "$S/up/node/store.db" --host sim-00000 --days 30 --interval 30
PORT=$(free_port)
"$PILOT" up --state-dir "$S/up" --http "127.0.0.1:$PORT" --interval 3600 --table-interval 3600 --log-level warning > "$S/up.out" 2> "$S/up.err" &
PIDS="$PIDS $!"
wait_for 30 grep -q "dashboard   http" "$S/up.out"
REGISTRY=$(sed -n 's/^  registry    //p' "$S/up.out")
HUB=$(sed -n "s/^  aggregator  hub '\([^']*\)'.*/\1/p" "$S/up.out")
URL="http://127.0.0.1:$PORT"
"$PILOT" init --hostname pub-01 --registry "$REGISTRY" --hub "$HUB" --state-dir "$S/pub-01" > /dev/null
"$PILOT" agent --state-dir "$S/pub-01" --tunnel-listen 127.0.0.1:0 --interval 3600 --log-level warning 2> "$S/pub-01.log" &
PIDS="$PIDS $!"
wait_for 20 "$PILOT" handshake "$HUB" bench --state-dir "$S/pub-01"
wait_for 20 "$PILOT" approve pub-01 --publish 'metrics/*' --state-dir "$S/up/node" # it publishes for the simulated hosts

# An hour of the simulated fleet, and a cycle of its first 1 %.
python3 "$(dirname "$0")/fleet_cycle.py" "$SIMULATED" "$S/cycle" --ts "$(date +%s)" --history-minutes 59 --some "$S/some"
"$PILOT" publish --stdin --state-dir "$S/pub-01" < "$S/cycle"
fleet_of() { curl -sf "$URL/api/v1/hosts" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["counts"]["hosts"] >= int(sys.argv[1]) else 1)' "$1"; }
wait_for 300 fleet_of "$HOSTS"
# Everything published is in (the hour's messages are most of it).
MESSAGES=$(wc -l < "$S/cycle")
stored() { "$PILOT" status --json --state-dir "$S/up/node" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["events"]["hub"]["stored"] >= int(sys.argv[1]) else 1)' "$MESSAGES"; }
wait_for 300 stored
# …and written by the store (the same loop serves the API): its count still for 2 s.
store_count() { "$PILOT" status --json --state-dir "$S/up/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"]["stored"])'; }
settled() { a=$(store_count); sleep 2; [ "$a" = "$(store_count)" ]; }
wait_for 300 settled

# The fleet's JSON: whole, and the changes after 1 % published again.
curl -sf "$URL/api/v1/hosts" > "$S/full.json"
FULL=$(wc -c < "$S/full.json")
SINCE=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(int(a["seq"]), int(a["epoch"]))' "$S/full.json")
sleep 1.2 # a new second, so that nothing else changes the answer but the 1 %
curl -sf "$URL/api/v1/hosts?since=${SINCE% *}&epoch=${SINCE#* }" > "$S/idle.json"
"$PILOT" publish --stdin --state-dir "$S/pub-01" < "$S/some"
changed() { curl -sf "$URL/api/v1/hosts?since=${SINCE% *}&epoch=${SINCE#* }" > "$S/delta.json" && python3 -c 'import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))["hosts"]) >= int(sys.argv[2]) else 1)' "$S/delta.json" "$(wc -l < "$S/some" | awk '{print int($1/8)}')"; }
wait_for 30 changed
DELTA=$(wc -c < "$S/delta.json")
DELTA_HOSTS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["hosts"]))' "$S/delta.json")
IDLE=$(wc -c < "$S/idle.json")

# The 30-day series answer on its own (the server's share of the host page).
TO=$(date +%s)
for _ in 1 2 3 4 5; do
    curl -sf -o /dev/null -w '%{time_total}\n' "$URL/api/v1/series?host=sim-00000&from=$((TO - 30 * 86400))&to=$TO&step=7200"
done > "$S/series.times"
SERIES_MS=$(sort -n "$S/series.times" | sed -n 3p | awk '{printf "%.0f", $1 * 1000}')

FLEET=$("$PY" "$DRIVER" --url "$URL" --bench-fleet "$HOSTS" --runs "$RUNS")
HOST=$("$PY" "$DRIVER" --url "$URL" --bench-host sim-00000 --runs "$RUNS")
field() { printf '%s' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }
echo "dashboard, $HOSTS hosts, headless chromium, median of $RUNS loads (navigation start to the page's mark):"
echo "  fleet page, every row drawn  $(field "$FLEET" median_ms) ms  (runs $(field "$FLEET" runs_ms)); aim < 300 ms"
echo "  host page, 30 days drawn     $(field "$HOST" median_ms) ms  ($(field "$HOST" what); runs $(field "$HOST" runs_ms)); aim < 500 ms"
echo "  of which /api/v1/series      $SERIES_MS ms (30 days, 2 h steps, median of 5)"
echo "  /api/v1/hosts                $FULL bytes whole; changes after 1 % published: $DELTA bytes ($DELTA_HOSTS hosts); nothing new: $IDLE bytes"
