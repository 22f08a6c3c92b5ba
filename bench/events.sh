#!/bin/sh
# The event-stream benchmark of `make bench`: N messages shaped like the
# seed's, from `pilot publish --stdin` on one node, through the hub on
# another, to `pilot subscribe --count N` on a third, all on loopback and
# encrypted; then, in the same run, the same messages through mosquitto at
# QoS 1 (mosquitto_pub -l, mosquitto_sub -C) when it is installed. Each is
# run RUNS times; the median rate is reported, with loss and the ratio.
#
#   sh bench/events.sh [PILOT] [N] [RUNS]
set -eu
PILOT=${1:-./pilot}
N=${2:-100000}
RUNS=${3:-3}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
S=$(mktemp -d "${TMPDIR:-/tmp}/pilot-bench-events.XXXXXX")
PIDS=""
cleanup() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$S"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; } # EXPRESSION
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wait_for() { # SECONDS CMD...: bounded polling
    tries=$(($1 * 10)); shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "bench/events.sh: timed out waiting for: $*" >&2; exit 1; }
        sleep 0.1
    done
}

python3 -c "
import random
random.seed(7)
for i in range($N):
    print('{\"host\":\"web-07\",\"cpu_pct\":%.1f,\"load\":%.2f,\"cores\":4,\"ts\":%d}' % (random.uniform(0, 100), random.uniform(0, 4), 1764100000 + i))
" > "$S/messages"

# Pilot: a registry and three nodes (publisher, hub, subscriber) on loopback.
"$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$S/registry" --log-level warning 2> "$S/registry.log" &
PIDS="$PIDS $!"
wait_for 10 test -s "$S/registry/registry.addr"
REGISTRY=$(cat "$S/registry/registry.addr")
for node in hub-01 pub-01 sub-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token bench-secret-1 --state-dir "$S/$node" > /dev/null
    "$PILOT" agent --state-dir "$S/$node" --tunnel-listen 127.0.0.1:0 --log-level warning 2> "$S/$node.log" &
    PIDS="$PIDS $!"
done
registered() { "$PILOT" status --json --state-dir "$S/$1" | grep -q '"registered":true'; }
for node in hub-01 pub-01 sub-01; do wait_for 20 registered "$node"; done
for node in pub-01 sub-01; do "$PILOT" handshake hub-01 "bench" --state-dir "$S/$node" > /dev/null; done
# The count of connections at the hub; subscriptions held at sub-01.
hub_connections() { "$PILOT" status --json --state-dir "$S/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['connections'])"; }
hub_has_more_than() { [ "$(hub_connections)" -gt "$1" ]; }
no_subscription() { "$PILOT" status --json --state-dir "$S/sub-01" | grep -q '"subscriptions":0'; }

pilot_run() { # RUN
    wait_for 20 no_subscription
    before=$(hub_connections)
    "$PILOT" subscribe 'metrics/*' --count "$N" --timeout 300 --state-dir "$S/sub-01" > "$S/pilot.out" 2> "$S/pilot.err" &
    sub=$!
    wait_for 20 hub_has_more_than "$before"
    start=$(now)
    "$PILOT" publish metrics/cpu/web-07 --stdin --state-dir "$S/pub-01" < "$S/messages"
    spooled=$(now)
    wait "$sub" || true
    end=$(now)
    got=$(sort -u "$S/pilot.out" | wc -l)
    lost=$((N - got))
    rate=$(awk "BEGIN { printf \"%d\", $got / ($end - $start) }")
    echo "pilot run $1: $rate msg/s end to end ($(calc "$end - $start") s; publish had spooled all after $(calc "$spooled - $start") s), lost $lost"
    echo "$rate" >> "$S/pilot.rates"
    echo "$lost" >> "$S/pilot.lost"
}
i=1; while [ "$i" -le "$RUNS" ]; do pilot_run "$i"; i=$((i + 1)); done
PILOT_RATE=$(median < "$S/pilot.rates")
PILOT_LOST=$(awk '{ s += $1 } END { print s }' "$S/pilot.lost")
echo "pilot: median $PILOT_RATE msg/s, $PILOT_LOST lost in $RUNS runs of $N (aim: 100000 msg/s, zero loss)"

if ! command -v mosquitto > /dev/null || ! command -v mosquitto_pub > /dev/null; then
    echo "mosquitto: not installed (apt-get install mosquitto mosquitto-clients); no comparison"
    exit 0
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$S/mosquitto.conf"
mosquitto -c "$S/mosquitto.conf" 2> "$S/mosquitto.log" &
PIDS="$PIDS $!"
wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
mosquitto_run() { # RUN
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -t 'metrics/#' -C "$N" -W 60 > "$S/mosq.out" 2> /dev/null &
    sub=$!
    sleep 0.5
    start=$(now)
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t metrics/cpu/web-07 -l < "$S/messages"
    wait "$sub" || true
    end=$(now)
    got=$(sort -u "$S/mosq.out" | wc -l)
    lost=$((N - got))
    rate=$(awk "BEGIN { printf \"%d\", $got / ($end - $start) }")
    echo "mosquitto run $1: $rate msg/s end to end ($(calc "$end - $start") s), lost $lost"
    echo "$rate" >> "$S/mosq.rates"
    echo "$lost" >> "$S/mosq.lost"
}
i=1; while [ "$i" -le "$RUNS" ]; do mosquitto_run "$i"; i=$((i + 1)); done
MOSQ_RATE=$(median < "$S/mosq.rates")
MOSQ_LOST=$(awk '{ s += $1 } END { print s }' "$S/mosq.lost")
echo "mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') QoS 1: median $MOSQ_RATE msg/s, $MOSQ_LOST lost in $RUNS runs of $N"
echo "ratio pilot/mosquitto: $(calc "$PILOT_RATE / $MOSQ_RATE")"
