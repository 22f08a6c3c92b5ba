#!/bin/sh
# The event-stream benchmark of `make bench`: N messages shaped like the
# seed's, from `pilot publish --stdin` on one node, through the hub on
# another, to `pilot subscribe --count N` on a third, all on loopback and
# encrypted; then, in the same run, the same messages through mosquitto at
# QoS 1 (mosquitto_pub -l, mosquitto_sub -C) when it is installed, and
# through nats-server, core NATS and JetStream (installed when missing, as
# root; a C publisher and subscriber against cnats, bench/nats/, built into
# the scratch directory). Each is run RUNS times; the median rate is
# reported, with loss and the ratio.
#
#   sh bench/events.sh [PILOT] [N] [RUNS]
set -eu
PILOT=${1:-./pilot}
N=${2:-100000}
RUNS=${3:-3}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
BENCH_NAME=events
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; } # EXPRESSION
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk "BEGIN { if (($2 + 0) > 0) printf \"%.2f\", $1 / $2; else print \"n/a\" }"; } # A B: A/B
# Each anchor's runs: one rate and one loss per run in $S/NAME.rates and
# $S/NAME.lost; the summary is their median rate and total loss.
record_run() { echo "$2" >> "$S/$1.rates"; echo "$3" >> "$S/$1.lost"; } # NAME RATE LOST
summary() { echo "median $(median < "$S/$1.rates") msg/s, $(awk '{ s += $1 } END { print s }' "$S/$1.lost") lost in $RUNS runs of $N"; } # NAME

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
for node in hub-01 web-07 sub-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token bench-secret-1 --state-dir "$S/$node" > /dev/null
    "$PILOT" agent --state-dir "$S/$node" --tunnel-listen 127.0.0.1:0 --log-level warning 2> "$S/$node.log" &
    PIDS="$PIDS $!"
done
for node in hub-01 web-07 sub-01; do wait_for 20 registered "$node"; done
for node in web-07 sub-01; do "$PILOT" handshake hub-01 "bench" --state-dir "$S/$node" > /dev/null; done
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
    "$PILOT" publish metrics/cpu/web-07 --stdin --state-dir "$S/web-07" < "$S/messages"
    spooled=$(now)
    wait "$sub" || true
    end=$(now)
    got=$(sort -u "$S/pilot.out" | wc -l)
    lost=$((N - got))
    rate=$(awk "BEGIN { printf \"%d\", $got / ($end - $start) }")
    echo "pilot run $1: $rate msg/s end to end ($(calc "$end - $start") s; publish had spooled all after $(calc "$spooled - $start") s), lost $lost"
    record_run pilot "$rate" "$lost"
}
i=1; while [ "$i" -le "$RUNS" ]; do pilot_run "$i"; i=$((i + 1)); done
PILOT_RATE=$(median < "$S/pilot.rates")
echo "pilot: $(summary pilot) (aim: 100000 msg/s, zero loss)"

# Two mosquitto configurations: its defaults (max_queued_messages 1000,
# which drops QoS 1 messages for a busy subscriber), and "unbounded"
# (no queue limit), which loses nothing. The end of a run is when the
# subscriber's output last grew (it stalls short of N when messages are lost).
output_settled() { # FILE N: prints the time the file last grew, once it has N lines or has not grown for 3 s
    last_count=-1; last_change=$(now)
    while :; do
        count=$(wc -l < "$1")
        if [ "$count" != "$last_count" ]; then last_count=$count; last_change=$(now); fi
        [ "$count" -ge "$2" ] && break
        awk "BEGIN { exit !($(now) - $last_change > 3) }" && break
        sleep 0.05
    done
    echo "$last_change"
}
mosquitto_runs() { # NAME EXTRA-CONFIG
    name=$1
    PORT=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\nlog_type warning\nlog_type notice\n%b' "$PORT" "$2" > "$S/mosquitto-$name.conf"
    mosquitto -c "$S/mosquitto-$name.conf" 2> "$S/mosquitto-$name.log" &
    broker=$!
    PIDS="$PIDS $broker"
    wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
    : > "$S/mosq-$name.rates"; : > "$S/mosq-$name.lost"
    i=1
    while [ "$i" -le "$RUNS" ]; do
        mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -t 'metrics/#' -C "$N" > "$S/mosq.out" 2> /dev/null &
        sub=$!
        sleep 0.5
        start=$(now)
        mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t metrics/cpu/web-07 -l < "$S/messages"
        end=$(output_settled "$S/mosq.out" "$N")
        kill "$sub" 2> /dev/null || true
        wait "$sub" 2> /dev/null || true
        got=$(sort -u "$S/mosq.out" | wc -l)
        lost=$((N - got))
        rate=$(awk "BEGIN { printf \"%d\", $got / ($end - $start) }")
        echo "mosquitto ($name) run $i: $rate msg/s end to end ($(calc "$end - $start") s), lost $lost"
        record_run "mosq-$name" "$rate" "$lost"
        i=$((i + 1))
    done
    kill "$broker"
    wait "$broker" 2> /dev/null || true
    kicked=$(grep -c "disconnected due to out of memory" "$S/mosquitto-$name.log" || true)
    [ "$kicked" = 0 ] || echo "mosquitto ($name): the broker disconnected the publisher $kicked times (\"out of memory\" in its log); what was in flight was lost"
    echo "mosquitto $VERSION QoS 1 ($name): $(summary "mosq-$name"); pilot/mosquitto $(ratio "$PILOT_RATE" "$(median < "$S/mosq-$name.rates")")"
}
if command -v mosquitto > /dev/null && command -v mosquitto_pub > /dev/null; then
    VERSION=$(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')
    mosquitto_runs unbounded 'max_queued_messages 0\nmax_inflight_messages 0\n'
    mosquitto_runs defaults ''
else
    echo "mosquitto: not installed (apt-get install mosquitto mosquitto-clients); no comparison"
fi

# NATS, two ways a user would pick instead: core NATS (at most once, in
# memory) and JetStream (a file-backed stream, async publishes with at most
# 1,000 acks pending, a durable pull consumer acking each message: at least
# once). The publisher and the subscriber are small C programs against
# cnats (bench/nats/), built here. Timed as pilot is: from just before the
# publisher starts, once the server has the subscription, to the subscriber's
# exit with N; short of N, to the subscriber's last message.
ready_or_gone() { [ -e "$1" ] || ! kill -0 "$2" 2> /dev/null; } # FILE PID
nats_runs() { # NAME MODE LABEL SERVER-FLAGS...
    name=$1; mode=$2; label=$3; shift 3
    PORT=$(free_port)
    nats-server -a 127.0.0.1 -p "$PORT" "$@" -l "$S/nats-$name.log" &
    server=$!
    PIDS="$PIDS $server"
    wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))"
    : > "$S/nats-$name.rates"; : > "$S/nats-$name.lost"
    i=1
    while [ "$i" -le "$RUNS" ]; do
        rm -f "$S/nats.ready"
        "$S/nats-sub" "$mode" "nats://127.0.0.1:$PORT" metrics.cpu.web-07 "$N" "$S/nats.ready" 120 > "$S/nats.out" 2> "$S/nats-sub.err" &
        sub=$!
        PIDS="$PIDS $sub"
        wait_for 30 ready_or_gone "$S/nats.ready" "$sub"
        [ -e "$S/nats.ready" ] || { echo "bench/events.sh: the NATS subscriber failed: $(tail -1 "$S/nats-sub.err")" >&2; exit 1; }
        start=$(now)
        "$S/nats-pub" "$mode" "nats://127.0.0.1:$PORT" metrics.cpu.web-07 "$S/messages" 2> "$S/nats-pub.err" ||
            echo "nats $name run $i: the publisher failed: $(tail -1 "$S/nats-pub.err")"
        wait "$sub" || echo "nats $name run $i: the subscriber failed: $(tail -1 "$S/nats-sub.err")"
        end=$(now)
        PIDS=${PIDS% "$sub"}
        got=$(sort -u "$S/nats.out" | wc -l)
        lost=$((N - got))
        [ "$got" -ge "$N" ] || end=$(awk '/^count / { print $8 }' "$S/nats-sub.err")
        [ -n "$end" ] && [ "$end" != 0.000000 ] || end=$start
        rate=$(awk "BEGIN { d = $end - $start; printf \"%d\", (d > 0) ? $got / d : 0 }")
        note=$(awk '/^count / && $4 != 0 { printf ", the library dropped %s", $4 } /refused [1-9]/ { printf ", the server refused %s", $NF }' "$S/nats-sub.err" "$S/nats-pub.err")
        echo "nats $name run $i: $rate msg/s end to end ($(calc "$end - $start") s), lost $lost$note"
        record_run "nats-$name" "$rate" "$lost"
        i=$((i + 1))
    done
    kill "$server"
    wait "$server" 2> /dev/null || true
    slow=$(grep -c "Slow Consumer" "$S/nats-$name.log" || true)
    [ "$slow" = 0 ] || echo "nats $name: the server reported a slow consumer $slow times (its log); what it held for it was dropped"
    echo "nats-server $NATS_VERSION $label: $(summary "nats-$name"); pilot/nats-$name $(ratio "$PILOT_RATE" "$(median < "$S/nats-$name.rates")")"
}
if ensure_packages nats-server libnats-dev; then
    for prog in pub sub; do
        gcc -O2 -o "$S/nats-$prog" "$(dirname "$0")/nats/$prog.c" -lnats 2> "$S/gcc-$prog.log" ||
            { echo "bench/events.sh: cannot build bench/nats/$prog.c: $(grep -m 1 'error' "$S/gcc-$prog.log" || head -n 1 "$S/gcc-$prog.log")" >&2; exit 1; }
    done
    NATS_VERSION=$(nats-server --version | sed 's/.* v//')
    nats_runs core core "core (at most once, in memory)"
    nats_runs jetstream js "JetStream (file stream, async publish 1000 pending, durable pull consumer with acks)" -js -sd "$S/nats-store"
else
    echo "nats: not installed (apt-get install nats-server libnats-dev); no comparison"
fi
