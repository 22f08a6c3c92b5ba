#!/bin/sh
# The agent's metrics and checks through the event stream: web-01 collects
# every second and publishes through the hub; a subscriber on metrics/*
# sees the seed's topics and fields, and one on health/* the checks'
# results. Then the hub is stopped: the agent's cycles wait in its spool
# and arrive, numbered in order, once the hub is back.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
start_registry
REGISTRY_PORT=${REGISTRY##*:}
for node in hub-01 web-01 sub-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
printf '#!/bin/sh\necho "QUEUE WARNING - 120 waiting | queue=120;100;500"\nexit 1\n' > "$SCRATCH/queue-check"
chmod 755 "$SCRATCH/queue-check"
# The agent's settings as config lines, the way an operator writes them.
cat >> "$SCRATCH/web-01/config" <<CONFIG
--interval 1
--check tcp:registry=127.0.0.1:$REGISTRY_PORT
--check process:agents=pilot,min=1
--check command:plugin=$SCRATCH/queue-check
CONFIG
HUB_PORT=$(free_port udp)
start_node hub-01 "$HUB_PORT"
start_node sub-01
for node in hub-01 sub-01; do wait_until 10 "$node registered" -- registered "$node"; done
expect_status 0 "handshake sub-01" -- "$PILOT" handshake hub-01 "events" --state-dir "$SCRATCH/sub-01"
start_node web-01
wait_until 10 "web-01 registered" -- registered web-01
expect_status 0 "handshake web-01" -- "$PILOT" handshake hub-01 "metrics" --state-dir "$SCRATCH/web-01"

expect_status 0 "metrics/* subscriber" -- "$PILOT" subscribe 'metrics/*' --count 24 --timeout 30 --state-dir "$SCRATCH/sub-01"
printf '%s\n' "$OUT" > "$SCRATCH/metrics.out"
python3 - "$SCRATCH/metrics.out" <<'PY' || fail "metrics messages are not the seed's: $(head -c 2000 "$SCRATCH/metrics.out")"
import json, sys
seen = {}
for line in open(sys.argv[1]):
    topic, payload = line.rstrip("\n").split("] ", 1)
    seen.setdefault(topic[1:], json.loads(payload))
def has(topic, *fields):
    assert topic in seen, "no %s in %s" % (topic, sorted(seen))
    message = seen[topic]
    for field in fields:
        assert field in message, "%s lacks %s: %s" % (topic, field, message)
    assert message["host"] == "web-01", message
    assert isinstance(message["ts"], int) and message["ts"] > 1700000000, message
    return message
cpu = has("metrics/cpu/web-01", "host", "cpu_pct", "load", "cores", "ts")
assert list(cpu)[:4] == ["host", "cpu_pct", "load", "cores"], list(cpu)
assert 0 <= cpu["cpu_pct"] <= 100 and cpu["cores"] >= 1, cpu
memory = has("metrics/memory/web-01", "mem_pct", "mem_used_kb", "mem_total_kb")
assert 0 < memory["mem_pct"] < 100 and memory["mem_used_kb"] < memory["mem_total_kb"], memory
disk = has("metrics/disk/web-01", "disk_pct", "mounts")
assert any(m["mount"] == "/" for m in disk["mounts"]), disk
has("metrics/uptime/web-01", "uptime_sec")
for kind in ("load", "net", "io", "swap"):
    has("metrics/%s/web-01" % kind)
PY

expect_status 0 "health/* subscriber" -- "$PILOT" subscribe 'health/*' --count 6 --timeout 20 --json --state-dir "$SCRATCH/sub-01"
printf '%s\n' "$OUT" > "$SCRATCH/health.out"
python3 - "$SCRATCH/health.out" <<'PY' || fail "health messages: $(cat "$SCRATCH/health.out")"
import json, sys
status = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    status[m["payload"]["check"]] = m["payload"]["status"]
    assert m["topic"] == "health/%s/web-01" % m["payload"]["check"], m
    if m["payload"]["check"] == "plugin":
        assert m["payload"]["perfdata"] == {"queue": 120} and m["payload"]["message"] == "QUEUE WARNING - 120 waiting", m
assert status == {"registry": "ok", "agents": "ok", "plugin": "warning"}, status
PY

# The hub goes away for a few cycles; nothing the agent collected is lost.
# shellcheck disable=SC2154 # set by start_node
kill "$hub_01_PID"
sleep 3
spooled=$(spool_count web-01 spooled)
[ "$spooled" -gt 0 ] || fail "the agent spooled nothing while the hub was away"
start_node hub-01 "$HUB_PORT"
spool_drained() { [ "$(spool_count web-01 spooled)" = 0 ]; }
wait_until 30 "the agent's spool to drain" -- spool_drained
echo "ok: the seed's metric topics and fields through the hub, three checks, $spooled messages spooled while the hub was away and delivered"
