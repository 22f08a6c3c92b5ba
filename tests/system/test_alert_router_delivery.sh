#!/bin/sh
# The alert router as its own node (pilot alert-router), subscribed to
# alerts/* at the hub, against a webhook receiver that is down, then
# killed under, then rate-limited:
# - outage: the receiver is down for 30 s while 50 alerts fire and
#   resolve; when it comes up every notification arrives, counted by
#   distinct id, firing before resolved for each alert;
# - kill -9 of the router while it delivers a backlog to a slow receiver:
#   after a restart nothing is missing, and at most the one notification
#   in flight arrives twice, with the same id;
# - storm: 2,000 host_down alerts published in about a second reach a
#   receiver the router paces at 1 request/s, which answers its first request with
#   429 and Retry-After: 2, as a handful of grouped notifications, no
#   retry sooner than Retry-After, every host in them;
# - heartbeat: the dead man's switch beats while the hub answers and
#   stops once it is gone.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3

start_registry
for node in hub-01 router-01 ops-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
HUB_PORT=$(free_port udp)
start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen "127.0.0.1:$HUB_PORT" --keepalive 1 \
    --no-metrics --table-interval 0 --http off --log-level notice
HUB_PID=$LAST_PID
wait_until 10 "hub-01 registered" -- registered hub-01
HOOK_PORT=$(free_port tcp)
LIMITED_PORT=$(free_port tcp)
BEAT_PORT=$(free_port tcp)
start_bg "$SCRATCH/beat.log" python3 "$REPO/tests/system/recorder.py" --port "$BEAT_PORT" --out "$SCRATCH/beat.jsonl" --max-seconds 300
start_router() {
    start_bg "$SCRATCH/router-01.log" "$PILOT" alert-router --state-dir "$SCRATCH/router-01" --keepalive 1 --tunnel-listen 127.0.0.1:0 \
        --log-level info --no-metrics \
        --receiver "webhook:hook=http://127.0.0.1:$HOOK_PORT/hook" --receiver "webhook:limited=http://127.0.0.1:$LIMITED_PORT/limited rate=1/s" \
        --route "metric=host_down -> limited" --route "default -> hook" \
        --group-wait 1s --group-interval 3s --max-backoff 2s --heartbeat-url "http://127.0.0.1:$BEAT_PORT/ping" --heartbeat-every 1s
    ROUTER_PID=$LAST_PID
    wait_until 10 "router-01 registered" -- registered router-01
}
start_router
"$PILOT" handshake hub-01 "alert router" --state-dir "$SCRATCH/router-01" > /dev/null || fail "handshake router-01"
start_bg "$SCRATCH/ops-01.log" "$PILOT" agent --state-dir "$SCRATCH/ops-01" --keepalive 1 --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
wait_until 10 "ops-01 registered" -- registered ops-01
"$PILOT" handshake hub-01 "publishes alerts" --state-dir "$SCRATCH/ops-01" > /dev/null || fail "handshake ops-01"
# Alerts come from the hub's own node unless granted: ops-01 stands in for an aggregator.
"$PILOT" approve ops-01 --publish 'alerts/*' --state-dir "$SCRATCH/hub-01" > /dev/null || fail "grant ops-01 alerts/*"
subscribed() { grep -q "alert router subscribed" "$SCRATCH/router-01.log"; }
wait_until 20 "the router subscribed at hub-01" -- subscribed

# alerts PREFIX COUNT STATUS [HOST-PREFIX]: TOPIC JSON lines for pilot publish --stdin.
alerts() {
    python3 - "$@" <<'PY'
import sys, time
prefix, count, status = sys.argv[1], int(sys.argv[2]), sys.argv[3]
metric_per_alert = len(sys.argv) < 5
now = int(time.time())
for i in range(count):
    metric = "%s%02d" % (prefix, i) if metric_per_alert else prefix
    host = "app-01" if metric_per_alert else "%s%04d" % (sys.argv[4], i)
    end = ',"ends_at":%d' % now if status == "resolved" else ""
    print('alerts/%s/%s {"host":"%s","metric":"%s","status":"%s","severity":"warning","fingerprint":"fp-%s-%s","value":1,"threshold":0,"ts":%d,"starts_at":%d%s}'
          % (metric, host, host, metric, status, metric, host, now, now, end))
PY
}
publish() { "$PILOT" publish --stdin --state-dir "$SCRATCH/ops-01" > /dev/null || fail "publish"; }
router_field() { # RECEIVER FIELD
    "$PILOT" status --json --state-dir "$SCRATCH/router-01" | python3 -c "
import json, sys
r = [x for x in json.load(sys.stdin)['alert-router']['receivers'] if x['name'] == '$1'][0]
print(r['$2'])"
}
# check_hook FILE WANT-DISTINCT MAX-DUPLICATES: distinct ids, duplicates, firing before resolved per alert.
check_hook() {
    python3 - "$@" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["headers"]["x-pilot-notification-id"] for r in rows]
distinct, dups = len(set(ids)), len(ids) - len(set(ids))
assert distinct == int(sys.argv[2]), "distinct %d, want %s" % (distinct, sys.argv[2])
assert dups <= int(sys.argv[3]), "%d duplicates" % dups
seen = {}
for r in rows:
    for a in r["body"]["alerts"]:
        seen.setdefault(a["fingerprint"], []).append(a["status"])
for fp, states in seen.items():
    first_resolved = states.index("resolved") if "resolved" in states else len(states)
    assert "firing" not in states[first_resolved:], (fp, states)
print(distinct, dups)
PY
}

# 1. Outage: the receiver is down while 50 alerts fire and resolve.
OUTAGE_START=$(date +%s)
alerts m 50 firing | publish
queued_at_least() { [ "$(router_field hook queued)" -ge "$1" ]; }
wait_until 20 "50 firing notifications queued" -- queued_at_least 50
alerts m 50 resolved | publish
wait_until 20 "50 resolves queued too" -- queued_at_least 100
tried() { [ "$(router_field hook retried)" -ge 1 ]; }
wait_until 20 "the router trying the receiver while it is down" -- tried
elapsed=$(( $(date +%s) - OUTAGE_START ))
[ "$elapsed" -lt 30 ] && sleep $((30 - elapsed))
start_bg "$SCRATCH/hook.log" python3 "$REPO/tests/system/recorder.py" --port "$HOOK_PORT" --out "$SCRATCH/hook1.jsonl" --max-seconds 200
HOOK_PID=$LAST_PID
all_delivered() { [ "$(router_field hook queued)" = 0 ]; }
wait_until 30 "the backlog delivered after the outage" -- all_delivered
RESULT=$(check_hook "$SCRATCH/hook1.jsonl" 100 0) || fail "after the outage: $RESULT"

# 2. kill -9 in the middle of delivering to a slow receiver.
kill "$HOOK_PID"
wait "$HOOK_PID" 2>/dev/null || true
start_bg "$SCRATCH/hook2.log" python3 "$REPO/tests/system/recorder.py" --port "$HOOK_PORT" --out "$SCRATCH/hook2.jsonl" --delay 0.4 --max-seconds 200
alerts k 30 firing | publish
delivering() { [ "$(grep -c . "$SCRATCH/hook2.jsonl" 2>/dev/null || echo 0)" -ge 5 ]; }
wait_until 30 "the router delivering the backlog" -- delivering
kill -9 "$ROUTER_PID"
wait "$ROUTER_PID" 2>/dev/null || true
BEFORE_KILL=$(grep -c . "$SCRATCH/hook2.jsonl")
start_router
wait_until 40 "the rest delivered after the restart" -- all_delivered
RESULT=$(check_hook "$SCRATCH/hook2.jsonl" 30 1) || fail "after kill -9: $RESULT"
[ "$BEFORE_KILL" -lt 30 ] || fail "the kill came after the backlog was delivered ($BEFORE_KILL of 30)"

# 3. A storm of 2,000 host_down alerts to a rate-limited receiver.
start_bg "$SCRATCH/limited.log" python3 "$REPO/tests/system/recorder.py" --port "$LIMITED_PORT" --out "$SCRATCH/limited.jsonl" --plan 429:2 --rate 2 --max-seconds 200
alerts host_down 2000 firing storm- > "$SCRATCH/storm.txt"
STORM_START=$(date +%s)
publish < "$SCRATCH/storm.txt"
STORM_PUBLISHED=$(( $(date +%s) - STORM_START ))
[ "$STORM_PUBLISHED" -le 5 ] || fail "publishing the storm took ${STORM_PUBLISHED}s, not about a second"
storm_delivered() {
    python3 - "$SCRATCH/limited.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hosts = {a["labels"]["host"] for r in rows if r["status"] == 200 for a in r["body"]["alerts"]}
assert len(hosts) == 2000, len(hosts)
PY
}
wait_until 40 "all 2000 hosts at the limited receiver" -- storm_delivered
python3 - "$SCRATCH/limited.jsonl" "$STORM_START" <<'PY' || fail "the storm was not grouped or not paced (see above)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in rows if r["status"] == 200]
assert 1 <= len(ok) <= 5, "%d notifications for 2000 alerts" % len(ok)
assert all(r["body"]["groupLabels"] == {"alertname": "host_down"} for r in ok), [r["body"]["groupLabels"] for r in ok]
for i, r in enumerate(rows):
    if r["status"] == 429:
        later = [x for x in rows[i + 1:] if x["headers"]["x-pilot-notification-id"] == r["headers"]["x-pilot-notification-id"]]
        assert later and later[0]["t"] - r["t"] >= 1.99, "a 429 retried after %.2fs" % (later[0]["t"] - r["t"])
assert not any(r["status"] == 429 for r in rows[1:]), "the router went faster than 1/s"
assert ok[0]["t"] - float(sys.argv[2]) <= 10, "the first notification came %.1fs after the storm" % (ok[0]["t"] - float(sys.argv[2]))
print(len(ok))
PY
[ "$(router_field limited failed)" = 0 ] || fail "the limited receiver gave notifications up"

# The dead man's switch: beats while the hub answers, none once it is gone.
beats() { grep -c '"path": "/ping"' "$SCRATCH/beat.jsonl" 2>/dev/null || echo 0; }
[ "$(beats)" -ge 3 ] || fail "only $(beats) heartbeats"
kill "$HUB_PID"
quiet() { before=$(beats); sleep 4; [ "$(beats)" = "$before" ]; }
wait_until 60 "the heartbeats stopping once the hub is gone" -- quiet
echo "ok: 100 notifications across a 30 s outage, 30 across a kill -9 ($RESULT distinct/duplicates), 2000 host_down (published in ${STORM_PUBLISHED}s) in grouped notifications paced by Retry-After and 1/s, heartbeats while the hub answered and none after"
