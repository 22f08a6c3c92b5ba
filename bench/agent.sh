#!/bin/sh
# The agent benchmark of `make bench`: the steady memory (total and
# anonymous RSS) and CPU per collection cycle of `pilot agent` collecting
# every second and publishing through a hub on loopback, beside Debian's
# prometheus-node-exporter scraped at the same rate and Debian's collectd
# (cpu, memory, df, load, interface, uptime plugins, 1 s interval), in the
# same run on the same machine. Then the built-in collectors alone, in
# process (pilot-bench collect).
#
#   sh bench/agent.sh [PILOT] [SECONDS] [PILOT_BENCH]
set -eu
PILOT=${1:-./pilot}
WINDOW=${2:-30}
BENCH=${3:-.build/release/pilot-bench}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
BENCH_NAME=agent
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system, in clock ticks
HZ=$(getconf CLK_TCK)
memory() { awk '/^VmRSS:/ { rss = $2 } /^RssAnon:/ { anon = $2 } END { printf "%.1f MB RSS (%.1f MB anonymous)", rss / 1024, anon / 1024 }' "/proc/$1/status"; }
# measure NAME PID CYCLES-PER-SECOND: CPU over the window per cycle, and memory at its end.
measure() {
    before=$(ticks "$2")
    sleep "$WINDOW"
    after=$(ticks "$2")
    cpu=$(awk "BEGIN { printf \"%.2f\", ($after - $before) * 1000 / $HZ / ($WINDOW * $3) }")
    echo "$1: $(memory "$2"), $cpu ms CPU per cycle over ${WINDOW} s"
}

# Pilot: a registry, a hub and the measured agent (web-01), collecting every second.
start_fleet hub-01 web-01
"$PILOT" agent --state-dir "$S/hub-01" --tunnel-listen 127.0.0.1:0 --log-level warning 2> "$S/hub-01.log" &
PIDS="$PIDS $!"
"$PILOT" agent --state-dir "$S/web-01" --tunnel-listen 127.0.0.1:0 --interval 1 --log-level warning 2> "$S/web-01.log" &
AGENT=$!
PIDS="$PIDS $AGENT"
for node in hub-01 web-01; do wait_for 20 registered "$node"; done
"$PILOT" handshake hub-01 "bench" --state-dir "$S/web-01" > /dev/null
sleep 5 # the first cycles, the spool and the tunnel settle
measure "pilot agent (collect + publish every 1 s)" "$AGENT" 1
delivered=$("$PILOT" status --json --state-dir "$S/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['stored'])")
echo "pilot agent: the hub stored $delivered of its messages"

if command -v prometheus-node-exporter > /dev/null; then
    PORT=$(free_port)
    prometheus-node-exporter --web.listen-address="127.0.0.1:$PORT" > "$S/node_exporter.log" 2>&1 &
    EXPORTER=$!
    PIDS="$PIDS $EXPORTER"
    wait_for 10 curl -sf "http://127.0.0.1:$PORT/metrics" -o /dev/null
    ( end=$(($(date +%s) + WINDOW + 7)); while [ "$(date +%s)" -lt "$end" ]; do curl -sf "http://127.0.0.1:$PORT/metrics" -o /dev/null; sleep 1; done ) &
    SCRAPER=$!
    PIDS="$PIDS $SCRAPER"
    sleep 5
    measure "prometheus-node-exporter (scraped every 1 s)" "$EXPORTER" 1
    kill "$SCRAPER" "$EXPORTER" 2>/dev/null || true
else
    echo "prometheus-node-exporter: not installed (apt-get install prometheus-node-exporter); no comparison"
fi

if command -v collectd > /dev/null; then
    cat > "$S/collectd.conf" <<CONF
Interval 1
BaseDir "$S"
PIDFile "$S/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin df
LoadPlugin load
LoadPlugin interface
LoadPlugin uptime
CONF
    collectd -f -C "$S/collectd.conf" > "$S/collectd.log" 2>&1 &
    COLLECTD=$!
    PIDS="$PIDS $COLLECTD"
    sleep 5
    measure "collectd (6 plugins, every 1 s)" "$COLLECTD" 1
    kill "$COLLECTD" 2>/dev/null || true
else
    echo "collectd: not installed (apt-get install collectd-core); no comparison"
fi

if [ -x "$BENCH" ]; then "$BENCH" collect --cycles 2000; fi
