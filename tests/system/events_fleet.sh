# shellcheck shell=sh
# A registry and nodes for the event-stream tests: hub-01 is the hub;
# web-01 and sub-01 share the fleet join token, so their handshakes with
# the hub are approved at once; evil-01 has no token and is never trusted.

start_registry() {
    start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" --log-level warning
    wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
    REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
}

# start_node NAME [TUNNEL-PORT]: starts NAME's agent; its PID is ${NAME}_PID (dashes as underscores).
# NODE_FLAGS: more flags for every node.
start_node() {
    # shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
    start_bg "$SCRATCH/$1.log" "$PILOT" agent --state-dir "$SCRATCH/$1" --keepalive 1 --tunnel-listen "127.0.0.1:${2:-0}" --log-level "${NODE_LOG_LEVEL:-notice}" ${NODE_FLAGS:-}
    eval "$(printf '%s' "$1" | tr - _)_PID=$LAST_PID"
}

registered() { "$PILOT" status --json --state-dir "$SCRATCH/$1" 2>/dev/null | grep -q '"registered":true'; }

# hub_count FIELD: a number from the hub's event statistics.
hub_count() { "$PILOT" status --json --state-dir "$SCRATCH/hub-01" | python3 -c "import json,sys; print(json.load(sys.stdin)['events']['hub']['$1'])"; }
# spool_count NODE FIELD: a number from NODE's spool for hub-01.
spool_count() {
    "$PILOT" status --json --state-dir "$SCRATCH/$1" | python3 -c "
import json,sys
spools=[s for s in json.load(sys.stdin)['events']['spools'] if s['hub']=='hub-01']
print(spools[0]['$2'] if spools else 0)"
}
hub_connections_at_least() { [ "$(hub_count connections)" -ge "$1" ]; }

start_fleet() {
    # The nodes' own metrics would mix with what the event tests publish.
    NODE_FLAGS="--no-metrics"
    start_registry
    for node in hub-01 web-01 sub-01 evil-01; do
        token="--join-token fleet-secret-1"
        [ "$node" = evil-01 ] && token=""
        # shellcheck disable=SC2086 # the token flag is two words or none
        "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/$node" $token > /dev/null || fail "init $node"
    done
    HUB_PORT=$(free_port udp)
    start_node hub-01 "$HUB_PORT"
    for node in web-01 sub-01 evil-01; do start_node "$node"; done
    for node in hub-01 web-01 sub-01 evil-01; do wait_until 10 "$node registered" -- registered "$node"; done
    for node in web-01 sub-01; do
        expect_status 0 "handshake $node" -- "$PILOT" handshake hub-01 "events" --state-dir "$SCRATCH/$node"
    done
}
