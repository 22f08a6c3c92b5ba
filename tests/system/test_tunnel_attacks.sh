#!/bin/sh
# What a hostile network can do to a hub's tunnels, with real processes on
# loopback and the protocol's own encodings (hardening, items 1 and 4):
# - 10,000 handshake initiations from fresh keys that no registry lists
#   leave the hub's peer table and memory as they were, and a node that
#   registers afterwards handshakes and publishes through the hub at once;
# - an initiation recorded on the path and replayed right after a kill -9
#   and restart of the hub is refused (the newest initiation per peer
#   survives the restart) and moves none of the hub's traffic.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
BENCH=${PILOT_BENCH:-$REPO/.build/debug/pilot-bench}
[ -x "$BENCH" ] || fail "no pilot-bench at $BENCH (swift build --product pilot-bench; or set PILOT_BENCH)"

status_field() { # NODE PYTHON-EXPRESSION over the status JSON as s
    "$PILOT" status --json --state-dir "$SCRATCH/$1" | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

start_registry
for node in hub-01 web-01 new-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
# web-01 reaches the hub through an on-path relay that records its first initiation.
HUB_PORT=$(free_port udp)
printf '127.0.0.1:%s\n' "$HUB_PORT" > "$SCRATCH/hub.target"
start_bg "$SCRATCH/relay.log" python3 "$REPO/tests/system/lossy_relay.py" --listen 127.0.0.1:0 --port-file "$SCRATCH/relay.port" \
    --target-file "$SCRATCH/hub.target" --loss 0 --max-delay-ms 0 --lifetime 170 --record "$SCRATCH/initiation.bin"
wait_until 10 "the relay's port" -- test -s "$SCRATCH/relay.port"
RELAY_PORT=$(cat "$SCRATCH/relay.port")
NODE_FLAGS="--no-metrics --advertise 127.0.0.1:$RELAY_PORT"
start_node hub-01 "$HUB_PORT"
NODE_FLAGS="--no-metrics"
start_node web-01
for node in hub-01 web-01; do wait_until 10 "$node registered" -- registered "$node"; done
expect_status 0 "handshake web-01" -- "$PILOT" handshake hub-01 "events" --state-dir "$SCRATCH/web-01"
wait_until 10 "the relay to record web-01's initiation" -- test -s "$SCRATCH/initiation.bin"
HUB_KEY=$(status_field hub-01 "s['public_key']")

# Item 1: the flood.
sleep 1
# shellcheck disable=SC2154 # set by start_node
RSS_BEFORE=$(rss_kb "$hub_01_PID")
PEERS_BEFORE=$(status_field hub-01 "s['tunnel_peers']")
expect_status 0 "the flood" -- "$BENCH" attack handshake-flood --to "127.0.0.1:$HUB_PORT" --key "$HUB_KEY" --count 10000 --sources 50
printf '%s\n' "$OUT"
sleep 1
RSS_AFTER=$(rss_kb "$hub_01_PID")
PEERS_AFTER=$(status_field hub-01 "s['tunnel_peers']")
REFUSED=$(status_field hub-01 "sum(v for k, v in s['tunnel_drops'].items() if k in ('initiation from a key this node does not know', 'initiation answered with a cookie (under load)', 'too many handshake initiations from one address'))")
printf 'hub during the flood: peers %s -> %s, RSS %s -> %s kB, initiations refused or cookied %s; drops %s\n' \
    "$PEERS_BEFORE" "$PEERS_AFTER" "$RSS_BEFORE" "$RSS_AFTER" "$REFUSED" "$(status_field hub-01 "s['tunnel_drops']")"
[ "$PEERS_AFTER" -le "$PEERS_BEFORE" ] || fail "unknown keys got peer entries at the hub: $PEERS_BEFORE -> $PEERS_AFTER"
[ "$REFUSED" -ge 5000 ] || fail "the hub did not count the flood's initiations as refused ($REFUSED)"
# Bound: what the flood may cost the hub (lookups in flight, caches, the allocator's slack).
[ $((RSS_AFTER - RSS_BEFORE)) -lt 16384 ] || fail "the flood grew the hub by $((RSS_AFTER - RSS_BEFORE)) kB (bound 16 MB)"

# A node registered after the flood gets through within 5 s.
"$PILOT" subscribe 'probe/*' --count 1 --timeout 30 --state-dir "$SCRATCH/hub-01" > "$SCRATCH/probe.out" 2> "$SCRATCH/probe.err" &
PIDS="$PIDS $!"
start_node new-01
wait_until 10 "new-01 registered" -- registered new-01
STARTED=$(date +%s%N)
"$PILOT" handshake hub-01 "events" --state-dir "$SCRATCH/new-01" > /dev/null 2> "$SCRATCH/new.err" || fail "new-01's handshake with the hub after the flood: $(cat "$SCRATCH/new.err")"
"$PILOT" publish probe/new-01 --data '{"host":"new-01"}' --state-dir "$SCRATCH/new-01" > /dev/null 2>> "$SCRATCH/new.err" || fail "new-01's publish: $(cat "$SCRATCH/new.err")"
arrived() { grep -q new-01 "$SCRATCH/probe.out"; }
wait_until 5 "new-01's message at the hub within 5 s of its handshake" -- arrived
printf 'new node after the flood: handshake and publish reached the hub in %s ms\n' "$((($(date +%s%N) - STARTED) / 1000000))"

# Item 4: kill -9 the hub, restart it, replay the recorded initiation at once.
kill -9 "$hub_01_PID"
wait "$hub_01_PID" 2>/dev/null || true
NODE_FLAGS="--no-metrics --advertise 127.0.0.1:$RELAY_PORT"
start_node hub-01 "$HUB_PORT"
wait_until 10 "the hub's control socket after the restart" -- "$PILOT" status --state-dir "$SCRATCH/hub-01"
python3 -c '
import socket, sys
data = open(sys.argv[1], "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.66", 0))
s.sendto(data, ("127.0.0.1", int(sys.argv[2])))
' "$SCRATCH/initiation.bin" "$HUB_PORT"
replay_refused() { [ "$(status_field hub-01 "s['tunnel_drops'].get('replayed handshake initiation', 0)")" -ge 1 ]; }
wait_until 5 "the hub to refuse the replayed initiation" -- replay_refused
# The hub's own traffic to web-01 still reaches web-01 (not the replayer's address).
expect_status 0 "the hub pings web-01 after the replay" -- "$PILOT" ping web-01 --count 1 --state-dir "$SCRATCH/hub-01"
echo "ok: 10,000 initiations from unknown keys cost the hub no peers and under 16 MB, a new node got through at once; a replayed initiation after a hub restart was refused"
