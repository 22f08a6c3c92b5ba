#!/bin/sh
# The alert router benchmark of `make bench`, against Alertmanager as the
# anchor, both delivering to the same kind of local webhook sink:
# - throughput: N alerts, each its own group (group_by '...', group_wait
#   0), reach the router through the hub (published on alerts/*) and
#   leave through its outbox; notifications per second at the sink, first
#   to last. Alertmanager gets the same N alerts in one POST to
#   /api/v2/alerts with the same grouping. RUNS runs each; medians.
# - latency: a breaching sample (disk_pct 97 for a new host) published
#   through the hub, the aggregator's rule, the router and the webhook:
#   from the line written to `pilot publish --stdin` to the sink's
#   receipt, p50 and p99 over LATENCY_SAMPLES samples (group_wait 0).
#
#   sh bench/router.sh [PILOT] [N] [RUNS] [LATENCY_SAMPLES]
set -eu
PILOT=${1:-./pilot}
N=${2:-2000}
RUNS=${3:-3}
SAMPLES=${4:-100}
case $PILOT in /*) ;; *) PILOT=$(pwd)/$PILOT ;; esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=router
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
command -v prometheus-alertmanager > /dev/null || { echo "bench/router.sh: needs prometheus-alertmanager" >&2; exit 1; }

start_sink() { # NAME: a recording webhook on a free port; sets SINK_PORT
    SINK_PORT=$(free_port)
    python3 "$REPO/tests/system/recorder.py" --port "$SINK_PORT" --out "$S/$1.jsonl" --max-seconds 3600 > /dev/null 2>&1 &
    PIDS="$PIDS $!"
    wait_for 10 python3 -c "import socket; socket.create_connection(('127.0.0.1', $SINK_PORT), 1).close()"
}
count() { grep -c . "$S/$1.jsonl" 2>/dev/null || echo 0; }
at_least() { [ "$(count "$1")" -ge "$2" ]; }
# rate NAME: notifications per second at the sink, first to last arrival.
rate() {
    python3 - "$S/$1.jsonl" <<'PY'
import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1])]
print("%.0f" % ((len(t) - 1) / (max(t) - min(t))) if len(t) > 1 and max(t) > min(t) else "0")
PY
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
alerts() { # RUN COUNT: alert notices as pilot publish --stdin lines
    python3 - "$1" "$2" <<'PY'
import sys, time
run, count, now = sys.argv[1], int(sys.argv[2]), int(time.time())
for i in range(count):
    host = "r%s-%05d" % (run, i)
    print('alerts/bench/%s {"host":"%s","metric":"bench","status":"firing","severity":"warning","fingerprint":"%s","value":1,"threshold":0,"ts":%d,"starts_at":%d}'
          % (host, host, host, now, now))
PY
}

start_fleet hub-01 pub-01
start_sink pilot
PILOT_SINK=$SINK_PORT
"$PILOT" aggregator --state-dir "$S/hub-01" --tunnel-listen 127.0.0.1:0 --http off --table-interval 0 --no-metrics --log-level warning \
    --receiver "webhook:sink=http://127.0.0.1:$PILOT_SINK/" --group-by ... --group-wait 0s --group-interval 1h 2> "$S/hub-01.log" &
PIDS="$PIDS $!"
"$PILOT" agent --state-dir "$S/pub-01" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level warning 2> "$S/pub-01.log" &
PIDS="$PIDS $!"
for node in hub-01 pub-01; do wait_for 20 registered "$node"; done
"$PILOT" handshake hub-01 "bench" --state-dir "$S/pub-01" > /dev/null

# The anchor: Alertmanager, the same grouping, its own sink.
start_sink alertmanager
AM_SINK=$SINK_PORT
AM_PORT=$(free_port)
cat > "$S/am.yml" <<EOF
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:$AM_SINK/
        send_resolved: false
EOF
prometheus-alertmanager --config.file "$S/am.yml" --storage.path "$S/am-data" --web.listen-address "127.0.0.1:$AM_PORT" \
    --cluster.listen-address "" --log.level warn 2> "$S/am.log" &
PIDS="$PIDS $!"
wait_for 20 curl -sf "http://127.0.0.1:$AM_PORT/-/ready"
am_alerts() { # RUN COUNT: the same alerts as Alertmanager's API takes them
    python3 - "$1" "$2" <<'PY'
import json, sys
print(json.dumps([{"labels": {"alertname": "bench", "host": "a%s-%05d" % (sys.argv[1], i)}, "annotations": {"summary": "bench"}}
                  for i in range(int(sys.argv[2]))]))
PY
}

PILOT_RATES="" AM_RATES=""
run=1
while [ "$run" -le "$RUNS" ]; do
    : > "$S/pilot.jsonl"; : > "$S/alertmanager.jsonl"
    alerts "$run" "$N" > "$S/alerts.txt"
    "$PILOT" publish --stdin --state-dir "$S/pub-01" < "$S/alerts.txt" > /dev/null
    wait_for 300 at_least pilot "$N"
    PILOT_RATES="$PILOT_RATES $(rate pilot)"
    am_alerts "$run" "$N" > "$S/am-alerts.json"
    curl -sf -H 'Content-Type: application/json' --data @"$S/am-alerts.json" "http://127.0.0.1:$AM_PORT/api/v2/alerts" > /dev/null
    wait_for 300 at_least alertmanager "$N"
    AM_RATES="$AM_RATES $(rate alertmanager)"
    run=$((run + 1))
done
PILOT_MEDIAN=$(echo "$PILOT_RATES" | median)
AM_MEDIAN=$(echo "$AM_RATES" | median)

# Latency from a breaching sample to the webhook, one sample every 0.2 s.
: > "$S/pilot.jsonl"
python3 - "$SAMPLES" "$S/written.txt" <<'PY' | "$PILOT" publish --stdin --state-dir "$S/pub-01" > /dev/null
import sys, time
count, log = int(sys.argv[1]), open(sys.argv[2], "w")
for i in range(count):
    host = "lat-%04d" % i
    now = time.time()
    sys.stdout.write('metrics/disk/%s {"host":"%s","disk_pct":97,"ts":%d}\n' % (host, host, int(now)))
    sys.stdout.flush()
    log.write("%s %.6f\n" % (host, now))
    log.flush()
    time.sleep(0.2)
PY
wait_for 60 at_least pilot "$SAMPLES"
LATENCY=$(python3 - "$S/pilot.jsonl" "$S/written.txt" <<'PY'
import json, sys
written = dict(line.split() for line in open(sys.argv[2]))
got = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    for a in r["body"]["alerts"]:
        got.setdefault(a["labels"]["host"], r["t"])
lat = sorted((got[h] - float(t)) * 1000 for h, t in written.items() if h in got)
def pct(p): return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
print("p50 %.1f ms, p99 %.1f ms over %d samples" % (pct(50), pct(99), len(lat)))
PY
)
echo "router: $N alerts, each its own group, to a local webhook: pilot $PILOT_MEDIAN notifications/s (runs:$PILOT_RATES), Alertmanager $AM_MEDIAN/s (runs:$AM_RATES); ratio $(awk "BEGIN { printf \"%.2f\", $PILOT_MEDIAN / ($AM_MEDIAN > 0 ? $AM_MEDIAN : 1) }")"
echo "router: breaching sample to webhook (hub, aggregator rule, router, group_wait 0): $LATENCY"
