#!/bin/sh
# Alerts end to end with real processes: three agents publish to the
# aggregator (the hub); db-01 reports its disks 97 % full (through
# --metric-override) → a critical alerts/disk_pct/db-01 fires, seen by a
# durable `pilot subscribe 'alerts/*'` on another node; db-01 stops →
# host_down fires; the aggregator is restarted; db-01 starts again →
# host_down resolves while the disk alert still fires; db-01's disks are
# back to normal → the disk alert resolves. Each exactly once: the restart
# neither re-fires nor loses anything. Also /api/alerts, /metrics,
# /api/hosts with the registry's tags and presence, and `pilot alerts`.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
require_command curl curl
start_registry
for node in hub-01 web-01 web-02 db-01 ops-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
HUB_PORT=$(free_port udp)
HTTP_PORT=$(free_port tcp)
start_aggregator() {
    start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen "127.0.0.1:$HUB_PORT" --keepalive 1 \
        --interval 1 --host-down-after 15s --table-interval 0 --http "127.0.0.1:$HTTP_PORT" --log-level notice
    AGGREGATOR_PID=$LAST_PID
    wait_until 10 "hub-01 registered" -- registered hub-01
}
# CPU and memory pinned low: a busy test machine must not fire the alerts
# that only forged samples may raise here.
CALM="--metric-override cpu_pct=3 --metric-override mem_pct=3"
start_agent() { # NAME [FLAGS]
    name=$1; shift
    # shellcheck disable=SC2086 # CALM is a list of flags
    start_bg "$SCRATCH/$name.log" "$PILOT" agent --state-dir "$SCRATCH/$name" --keepalive 1 --tunnel-listen 127.0.0.1:0 --interval 1 --log-level notice $CALM "$@"
    eval "$(printf '%s' "$name" | tr - _)_PID=$LAST_PID"
    wait_until 10 "$name registered" -- registered "$name"
    "$PILOT" handshake hub-01 "fleet" --state-dir "$SCRATCH/$name" > /dev/null || fail "handshake $name"
}
start_aggregator
start_agent ops-01
"$PILOT" subscribe 'alerts/*' --durable ops --json --state-dir "$SCRATCH/ops-01" > "$SCRATCH/alerts.out" 2> "$SCRATCH/alerts.err" &
SUB_PID=$!
PIDS="$PIDS $SUB_PID"
start_agent web-01
start_agent web-02
"$PILOT" set-tags web --state-dir "$SCRATCH/web-02" > /dev/null || fail "set-tags web-02"
start_agent db-01 --metric-override disk_pct=97

events() { # the alert notices seen so far, as "metric host status severity" lines
    python3 - "$SCRATCH/alerts.out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        p = json.loads(line)["payload"]
    except ValueError:
        continue
    print(p["metric"], p["host"], p["status"], p["severity"], p.get("labels", {}).get("mount", "-"))
PY
}
seen() { events | grep -q "^$1\$"; }
wait_until 30 "disk_pct on db-01 firing critical" -- seen "disk_pct db-01 firing critical /"
expect_status 0 "pilot alerts" -- "$PILOT" alerts --state-dir "$SCRATCH/hub-01"
printf '%s' "$OUT" | grep -q "critical  db-01 .*disk_pct mount=/" || fail "pilot alerts: $OUT"
curl -sf "http://127.0.0.1:$HTTP_PORT/api/alerts" | grep -q '"fingerprint"' || fail "/api/alerts has no alert"
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" > "$SCRATCH/metrics.txt" || fail "/metrics"
grep -q '^# TYPE pilot_cpu_pct gauge$' "$SCRATCH/metrics.txt" || fail "/metrics lacks TYPE lines"
grep -q '^pilot_disk_pct{host="db-01",mount="/"} 97$' "$SCRATCH/metrics.txt" || fail "/metrics lacks db-01's disk: $(grep disk_pct "$SCRATCH/metrics.txt" | head -3)"
tagged() { curl -sf "http://127.0.0.1:$HTTP_PORT/api/hosts" | grep -q '"host":"web-02","up":true,"last_seen":[0-9]*,"tags":\["web"\],"registry":"online"'; }
wait_until 30 "web-02 with its registry tags and presence in /api/hosts" -- tagged
# Without a store or an alert router on its node the dashboard's API says so, not empty charts.
curl -sf "http://127.0.0.1:$HTTP_PORT/api/v1/hosts" | grep -q '"features":{"history":false,"silences":false,"write":false}' \
    || fail "/api/v1/hosts does not say there is no history here"
code=$(curl -s -o "$SCRATCH/series.json" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/api/v1/series?host=db-01")
if [ "$code" != 503 ] || ! grep -q "no store runs on this aggregator's node" "$SCRATCH/series.json"; then
    fail "/api/v1/series without a store: $code $(cat "$SCRATCH/series.json")"
fi
curl -sf "http://127.0.0.1:$HTTP_PORT/api/v1/alerts" | grep -q '"silences":null' || fail "/api/v1/alerts does not say there is no alert router"

# db-01 stops: host_down fires.
# shellcheck disable=SC2154 # set by start_agent
kill "$db_01_PID"
wait_until 40 "host_down on db-01" -- seen "host_down db-01 firing critical -"

# The aggregator restarts in the middle of it all.
kill "$AGGREGATOR_PID"
wait "$AGGREGATOR_PID" 2>/dev/null || true
start_aggregator

# db-01 comes back, its disks still full: host_down resolves, the disk alert stays.
start_agent db-01 --metric-override disk_pct=97
wait_until 40 "host_down on db-01 resolved" -- seen "host_down db-01 resolved critical -"
sleep 3
seen "disk_pct db-01 resolved critical /" && fail "the disk alert resolved while the disk is still full"
# db-01's disks back to normal: the disk alert resolves.
kill "$db_01_PID"
# A restart waits for the old process, as systemd does: until it has gone,
# its control socket still answers for db-01.
wait "$db_01_PID" 2>/dev/null || true
start_agent db-01 --metric-override disk_pct=40
wait_until 40 "disk_pct on db-01 resolved" -- seen "disk_pct db-01 resolved critical /"
sleep 2

events > "$SCRATCH/events.txt"
for expected in "disk_pct db-01 firing critical /" "host_down db-01 firing critical -" "host_down db-01 resolved critical -" "disk_pct db-01 resolved critical /"; do
    count=$(grep -c "^$expected\$" "$SCRATCH/events.txt" || true)
    [ "$count" = 1 ] || fail "'$expected' seen $count times, not once: $(cat "$SCRATCH/events.txt")"
done
if grep -v "db-01" "$SCRATCH/events.txt" | grep -q "host_down"; then fail "a healthy host was reported down: $(cat "$SCRATCH/events.txt")"; fi
# The hub's own publications are numbered: a consumer that discards
# duplicates by (publisher, sequence), as the README says, keeps every alert.
python3 - "$SCRATCH/alerts.out" <<'PY' || fail "alerts are not numbered one by one: $(head -3 "$SCRATCH/alerts.out")"
import json, sys
ids = [(m["publisher"], m["seq"]) for m in (json.loads(line) for line in open(sys.argv[1]) if line.startswith("{"))]
assert ids and all(seq >= 1 for _, seq in ids), ids[:5]
assert len(set(ids)) == len(ids), "a (publisher, sequence) pair repeats"
assert all("/local/" in publisher for publisher, _ in ids), ids[:3]
PY

# A node that collects before the hub trusts it keeps its metrics in the
# spool, says why, and delivers them once the handshake is approved.
"$PILOT" init --hostname web-03 --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/web-03" > /dev/null || fail "init web-03"
# shellcheck disable=SC2086 # CALM is a list of flags
start_bg "$SCRATCH/web-03.log" "$PILOT" agent --state-dir "$SCRATCH/web-03" --keepalive 1 --tunnel-listen 127.0.0.1:0 --interval 1 --log-level notice $CALM
wait_until 10 "web-03 registered" -- registered web-03
spool_field() { "$PILOT" status --json --state-dir "$SCRATCH/web-03" | python3 -c "
import json,sys
spools=[s for s in json.load(sys.stdin)['events']['spools'] if s['hub']=='hub-01']
print(spools[0]['$1'] if spools else '')"; }
collected_untrusted() { [ "$(spool_field spooled)" -ge 16 ]; }
wait_until 20 "web-03 spooling two cycles while untrusted" -- collected_untrusted
BEFORE_TRUST=$(spool_field published)
says_untrusted() { case "$(spool_field last_error)" in *"does not trust this node"*) true ;; *) false ;; esac; }
wait_until 10 "web-03's spool to say the hub refuses it (last error: $(spool_field last_error))" -- says_untrusted
"$PILOT" handshake hub-01 "fleet" --state-dir "$SCRATCH/web-03" > /dev/null 2>&1 || true
"$PILOT" approve web-03 --state-dir "$SCRATCH/hub-01" > /dev/null || fail "approve web-03"
delivered_since() { [ "$(spool_field acknowledged)" -ge "$BEFORE_TRUST" ] && [ "$(spool_field last_error)" = None ]; }
wait_until 30 "web-03's messages from before the approval acknowledged, its error gone" -- delivered_since
# A refusal with nothing spooled does not outlive the approval.
"$PILOT" init --hostname ops-02 --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/ops-02" > /dev/null || fail "init ops-02"
start_bg "$SCRATCH/ops-02.log" "$PILOT" agent --state-dir "$SCRATCH/ops-02" --keepalive 1 --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
wait_until 10 "ops-02 registered" -- registered ops-02
expect_status 1 "a publish the hub refuses" -- "$PILOT" publish metrics/cpu/ops-02 --data '{"cpu_pct":1}' --state-dir "$SCRATCH/ops-02"
ops_error() { "$PILOT" status --json --state-dir "$SCRATCH/ops-02" | python3 -c "import json,sys; print([s['last_error'] for s in json.load(sys.stdin)['events']['spools']][0])"; }
case "$(ops_error)" in *"does not trust this node"*) ;; *) fail "ops-02's spool does not say it is refused: $(ops_error)" ;; esac
"$PILOT" handshake hub-01 "ops" --state-dir "$SCRATCH/ops-02" > /dev/null 2>&1 || true
"$PILOT" approve ops-02 --state-dir "$SCRATCH/hub-01" > /dev/null || fail "approve ops-02"
cleared() { [ "$(ops_error)" = None ]; }
wait_until 20 "ops-02's refusal cleared once approved (nothing spooled)" -- cleared

# A trusted node speaks for itself only: web-01's forged metrics of db-01 and its
# forged alert are refused at the hub, naming the rule, and nothing fires.
hub_refused() { "$PILOT" status --json --state-dir "$SCRATCH/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['refused_authority'])"; }
# `pilot publish` waits for the hub's verdict: exit 1, the hub's reason on stderr.
expect_status 1 "a forged topic" -- "$PILOT" publish metrics/cpu/db-01 --data '{"host":"db-01","cpu_pct":99.5}' --state-dir "$SCRATCH/web-01"
expect_one_line_error "a forged topic"
case "$ERR" in *"hub hub-01 refused the message: metrics/cpu/db-01: metrics/*/HOST must name the publisher (web-01), not db-01"*) ;;
    *) fail "publish of a forged topic did not give the hub's reason: $ERR" ;; esac
expect_status 1 "a forged host field" -- "$PILOT" publish metrics/memory/web-01 --data '{"host":"db-01","mem_pct":99.5}' --state-dir "$SCRATCH/web-01"
case "$ERR" in *"refused the message: metrics/memory/web-01:"*"db-01"*) ;; *) fail "publish of a forged host field: $ERR" ;; esac
expect_status 1 "a forged alert" -- "$PILOT" publish alerts/cpu_pct/db-01 --data '{"host":"db-01","metric":"cpu_pct","status":"firing","severity":"critical"}' --state-dir "$SCRATCH/web-01"
case "$ERR" in *"only the hub's own node publishes alerts"*) ;; *) fail "publish of a forged alert: $ERR" ;; esac
# Of a batch, the refused ones are named and counted; the rest are taken.
printf 'metrics/uptime/web-01 {"host":"web-01","uptime_sec":7}\nalerts/x/web-01 {"host":"web-01"}\n' > "$SCRATCH/mixed"
expect_status 1 "a batch with one forgery" -- sh -c "\"$PILOT\" publish --stdin --state-dir \"$SCRATCH/web-01\" < \"$SCRATCH/mixed\""
case "$ERR" in *"refused 1 of 2 messages: alerts/x/web-01:"*) ;; *) fail "a batch with one forgery: $ERR" ;; esac
expect_status 0 "--no-wait" -- "$PILOT" publish alerts/cpu_pct/db-01 --no-wait --data '{"host":"db-01"}' --state-dir "$SCRATCH/web-01"
refused_five() { [ "$(hub_refused)" -ge 5 ]; }
wait_until 15 "the hub refusing web-01's five forgeries" -- refused_five
grep -q "metrics/\*/HOST must name the publisher (web-01), not db-01" "$SCRATCH/web-01.log" || fail "web-01 was not told which rule its publication broke"
grep -q "only the hub's own node publishes alerts" "$SCRATCH/web-01.log" || fail "web-01 was not told why its alert was refused"
sleep 3
if events | grep -q "^cpu_pct db-01\|^mem_pct db-01"; then fail "a forged sample raised an alert: $(events | grep _pct)"; fi
# Granted, a collector relays for others.
"$PILOT" approve web-01 --publish 'metrics/*' --state-dir "$SCRATCH/hub-01" > /dev/null || fail "approve web-01 --publish"
before=$(hub_refused)
"$PILOT" publish metrics/uptime/db-01 --data '{"host":"db-01","uptime_sec":5}' --state-dir "$SCRATCH/web-01" > /dev/null || fail "publish as a collector"
relayed() { curl -sf "http://127.0.0.1:$HTTP_PORT/api/v1/hosts/db-01" | grep -q '"uptime_s":5'; }
wait_until 15 "web-01's relayed uptime of db-01 at the aggregator" -- relayed
[ "$(hub_refused)" = "$before" ] || fail "a granted relay was refused"

echo "ok: disk critical, host_down fired and resolved across an aggregator restart, disk resolved; each notice once and numbered; /api/alerts, /metrics, pilot alerts; $BEFORE_TRUST messages collected before the hub trusted web-03 delivered after; an empty spool's refusal cleared on approval; forged metrics and alerts refused, a granted collector relays"
