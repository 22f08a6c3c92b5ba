#!/bin/sh
# An existing Prometheus (Debian's) scrapes the aggregator's /metrics, and
# a fleet value comes back through Prometheus's own HTTP query API.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command prometheus prometheus
require_command curl curl
require_command python3 python3
start_registry
"$PILOT" init --hostname hub-01 --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/hub-01" > /dev/null || fail "init"
HTTP_PORT=$(free_port tcp)
PROM_PORT=$(free_port tcp)
# The aggregator's own host reports its disks at a known 42.5 %.
start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen 127.0.0.1:0 --interval 1 \
    --metric-override disk_pct=42.5 --table-interval 0 --http "127.0.0.1:$HTTP_PORT" --log-level notice
metrics_ready() { curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q '^pilot_disk_pct{host="hub-01",mount="/"} 42.5$'; }
wait_until 20 "the aggregator's /metrics" -- metrics_ready

cat > "$SCRATCH/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: pilot
    static_configs:
      - targets: ["127.0.0.1:$HTTP_PORT"]
YML
start_bg "$SCRATCH/prometheus.log" prometheus --config.file="$SCRATCH/prometheus.yml" --storage.tsdb.path="$SCRATCH/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT"
query() {
    curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=pilot_disk_pct{host="hub-01",mount="/"}' > "$SCRATCH/answer.json" &&
        python3 -c "
import json, sys
result = json.load(open(sys.argv[1]))['data']['result']
assert result and float(result[0]['value'][1]) == 42.5, result
" "$SCRATCH/answer.json"
}
wait_until 30 "Prometheus to answer pilot_disk_pct = 42.5" -- query
curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=up{job="pilot"}' | grep -q '"1"\]' || fail "Prometheus says the target is not up"
echo "ok: Prometheus scraped /metrics and answered pilot_disk_pct{host=\"hub-01\",mount=\"/\"} = 42.5"
