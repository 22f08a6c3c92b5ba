#!/bin/sh
# The aggregator benchmark of `make bench`: HOSTS simulated hosts publish
# the agent's eight messages per cycle through a node to the aggregator,
# on a timeline compressed COMPRESS times (a 30 s cycle every 30/COMPRESS
# s). Reports the aggregator's CPU (% of one core at the real 30 s
# interval: the measured share divided by COMPRESS), its peak RSS, and the
# delay from publishing a breaching sample to its alert at a subscriber.
#
#   sh bench/aggregator.sh [PILOT] [HOSTS] [CYCLES] [COMPRESS]
set -eu
PILOT=${1:-./pilot}
HOSTS=${2:-10000}
CYCLES=${3:-10}
COMPRESS=${4:-10}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
BENCH_NAME=aggregator
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
now() { date +%s.%N; }
calc_seconds() { awk "BEGIN { printf \"%.1f\", $1 }"; }
PERIOD=$(awk "BEGIN { print 30 / $COMPRESS }")

start_fleet hub-01 pub-01
"$PILOT" aggregator --state-dir "$S/hub-01" --tunnel-listen 127.0.0.1:0 --http off --table-interval 0 --interval 3600 \
    --host-down-after 1h --log-level warning 2> "$S/hub-01.log" > /dev/null &
AGGREGATOR=$!
PIDS="$PIDS $AGGREGATOR"
"$PILOT" agent --state-dir "$S/pub-01" --tunnel-listen 127.0.0.1:0 --interval 3600 --log-level warning 2> "$S/pub-01.log" &
PIDS="$PIDS $!"
for node in hub-01 pub-01; do wait_for 20 registered "$node"; done
"$PILOT" handshake hub-01 "bench" --state-dir "$S/pub-01" > /dev/null
"$PILOT" approve pub-01 --publish 'metrics/*' --state-dir "$S/hub-01" > /dev/null # it publishes for the simulated hosts

# One cycle of the fleet: eight messages per host, shaped like the agent's.
python3 "$(dirname "$0")/fleet_cycle.py" "$HOSTS" "$S/cycle"
PER_CYCLE=$((HOSTS * 8))
stored() { "$PILOT" status --json --state-dir "$S/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['stored'])"; }
stored_at_least() { [ "$(stored)" -ge "$1" ]; }

# Warm-up: the first cycle builds the fleet's state.
"$PILOT" publish --stdin --state-dir "$S/pub-01" < "$S/cycle"
wait_for 120 stored_at_least "$PER_CYCLE"
base=$(stored)
before=$(awk '{ print $14 + $15 }' "/proc/$AGGREGATOR/stat")
start=$(now)
i=1
while [ "$i" -le "$CYCLES" ]; do
    due=$(awk "BEGIN { printf \"%.3f\", $start + $i * $PERIOD }")
    "$PILOT" publish --stdin --state-dir "$S/pub-01" < "$S/cycle"
    left=$(awk "BEGIN { d = $due - $(now); print (d > 0) ? d : 0 }")
    sleep "$left"
    i=$((i + 1))
done
wait_for 120 stored_at_least $((base + CYCLES * PER_CYCLE))
end=$(now)
after=$(awk '{ print $14 + $15 }' "/proc/$AGGREGATOR/stat")
HZ=$(getconf CLK_TCK)
SHARE=$(awk "BEGIN { printf \"%.1f\", ($after - $before) / $HZ / ($end - $start) * 100 }")
# At the real interval each cycle's CPU is spread over 30 s.
REAL=$(awk "BEGIN { printf \"%.2f\", ($after - $before) / $HZ / $CYCLES / 30 * 100 }")
PER_CYCLE_MS=$(awk "BEGIN { printf \"%.0f\", ($after - $before) / $HZ / $CYCLES * 1000 }")
PEAK=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$AGGREGATOR/status")
RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$AGGREGATOR/status")
echo "aggregator: $HOSTS hosts x 8 messages, $CYCLES cycles every $PERIOD s ($COMPRESS x compressed, $(calc_seconds "$end - $start") s in all): $SHARE % of one core while compressed, $PER_CYCLE_MS ms CPU per cycle -> $REAL % of one core at the real 30 s interval; peak RSS $PEAK MB (now $RSS MB) (aims: under 15 %, under 150 MB)"

# Delay: one host's disk crosses 95 %; time until the alert reaches a subscriber.
"$PILOT" subscribe 'alerts/disk_pct/*' --count 1 --timeout 60 --state-dir "$S/pub-01" > "$S/alert.out" 2>&1 &
SUB=$!
PIDS="$PIDS $SUB"
sleep 2
t0=$(now)
printf 'metrics/disk/sim-00042 {"host":"sim-00042","disk_pct":99,"mounts":[{"mount":"/","disk_pct":99}],"ts":1764100999}\n' |
    "$PILOT" publish --stdin --state-dir "$S/pub-01"
wait "$SUB" || { echo "aggregator: no alert arrived: $(cat "$S/alert.out")"; exit 1; }
t1=$(now)
echo "aggregator: a breaching sample published -> its alert at a subscriber in $(awk "BEGIN { printf \"%.0f\", ($t1 - $t0) * 1000 }") ms (publish CLI, spool, tunnel, hub, rules, alert, tunnel, subscribe CLI)"
