#!/bin/sh
# `pilot store --remote-write`: Debian's Prometheus, with its remote-write
# receiver on, takes every sample the store ingests. Prometheus is stopped
# midway (the store keeps a backlog and retries) and started again; at the
# end its own query API returns all 1,500 samples with their values, under
# the names the aggregator's /metrics uses.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
# shellcheck source=tests/system/store_fleet.sh
. "$(dirname "$0")/store_fleet.sh"
require_command prometheus prometheus
require_command curl curl
require_command python3 python3

PROM_PORT=$(free_port tcp)
printf 'global:\n  scrape_interval: 1m\n' > "$SCRATCH/prometheus.yml"
start_prometheus() {
    start_bg "$SCRATCH/prometheus.log" prometheus --config.file="$SCRATCH/prometheus.yml" --storage.tsdb.path="$SCRATCH/tsdb" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver
    PROM_PID=$LAST_PID
    wait_until 30 "Prometheus ready" -- curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
}
start_prometheus
# Credentials in the URL become basic auth (Prometheus ignores it here) and must never reach a log.
STORE_ARGS="--remote-write http://pilot:hunter2@127.0.0.1:$PROM_PORT/api/v1/write"
start_store_fleet

# 25 minutes of 1 s samples ending now: inside Prometheus's head block.
FROM=$(( $(date +%s) - 1500 ))
END=$((FROM + 1499))
# in_prometheus: how many of the samples Prometheus holds.
in_prometheus() {
    curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "time=$END" \
        --data-urlencode 'query=count_over_time(pilot_cpu_pct{host="sim-01"}[30m])' |
        python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print(r[0]['value'][1] if r else 0)"
}
prometheus_has() { n=$(in_prometheus) && [ "$n" -ge "$1" ]; }
publish_cpu 1500 "$FROM" 1 0.5
wait_until 30 "200 samples in Prometheus" -- prometheus_has 200
kill "$PROM_PID"
wait "$PROM_PID" 2>/dev/null || true
retrying() { grep -q "remote write failed; retrying" "$SCRATCH/st-01.log"; }
wait_until 20 "the store to notice Prometheus is gone" -- retrying
# remote_write FIELD: a number from the store's status.
remote_write() { "$PILOT" status --json --state-dir "$SCRATCH/st-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['store']['remote_write']['$1'])"; }
backlog_grows() { [ "$(remote_write queued_samples)" -ge 100 ]; }
wait_until 20 "samples to queue while Prometheus is away" -- backlog_grows
QUEUED=$(remote_write queued_samples)
start_prometheus
wait "$PUB" || fail "publish: $(cat "$SCRATCH/publish.err")"
wait_until 60 "all 1,500 samples in Prometheus" -- prometheus_has 1500
grep -q "remote write resumed" "$SCRATCH/st-01.log" || fail "the store did not log that remote write resumed"
drained() { [ "$(remote_write queued_samples)" = 0 ]; }
wait_until 20 "the backlog to drain" -- drained
[ "$(remote_write refused_samples)" = 0 ] || fail "Prometheus refused samples: $(remote_write last_error)"
! grep -q hunter2 "$SCRATCH/st-01.log" || fail "the remote-write password reached the log"

curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query_range" --data-urlencode 'query=pilot_cpu_pct{host="sim-01"}' \
    --data-urlencode "start=$FROM" --data-urlencode "end=$END" --data-urlencode "step=1" > "$SCRATCH/range.json" || fail "query_range"
python3 - "$SCRATCH/range.json" "$FROM" <<'PY' || fail "Prometheus does not hold the published samples"
import json, sys
answer, start = json.load(open(sys.argv[1])), int(sys.argv[2])
result = answer['data']['result']
assert len(result) == 1, result
assert result[0]['metric'] == {'__name__': 'pilot_cpu_pct', 'host': 'sim-01'}, result[0]['metric']
values = result[0]['values']
assert [int(t) for t, _ in values] == [start + i for i in range(1500)], 'timestamps differ'
assert [float(v) for _, v in values] == [round(i % 1000 / 10, 1) for i in range(1500)], 'values differ'
PY
LOAD=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "time=$END" --data-urlencode 'query=pilot_load{host="sim-01"}') || fail "query pilot_load"
printf '%s' "$LOAD" | grep -q '"0.5"' || fail "pilot_load: $LOAD"
echo "ok: 1,500 of 1,500 samples read back from Prometheus (pilot_cpu_pct{host=\"sim-01\"}, values exact) across a Prometheus restart ($QUEUED queued on disk while it was away); the password never logged"
