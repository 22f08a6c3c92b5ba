# shellcheck shell=sh
# A registry, a hub (hub-01, an aggregator), a publisher (pub-01) trusted
# for metrics, and a store (st-01) subscribed at the hub, for the store's
# tests. STORE_ARGS: extra flags for `pilot store`; the store's read API
# answers on 127.0.0.1:$API_PORT, its PID is $STORE_PID.

start_hub() {
    start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --no-metrics \
        --http off --table-interval 0 --log-level notice
    HUB_PID=$LAST_PID
}

start_store() {
    # shellcheck disable=SC2086 # STORE_ARGS is a list of flags
    start_bg "$SCRATCH/st-01.log" "$PILOT" store --state-dir "$SCRATCH/st-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --no-metrics \
        --http "127.0.0.1:$API_PORT" --log-level notice ${STORE_ARGS:-}
    STORE_PID=$LAST_PID
}

start_store_fleet() {
    start_registry
    for node in hub-01 st-01 pub-01; do
        "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
    done
    start_hub
    wait_until 10 "hub-01 registered" -- registered hub-01
    API_PORT=$(free_port tcp)
    start_bg "$SCRATCH/pub-01.log" "$PILOT" agent --state-dir "$SCRATCH/pub-01" --tunnel-listen 127.0.0.1:0 --keepalive 1 --no-metrics --log-level notice
    wait_until 10 "pub-01 registered" -- registered pub-01
    expect_status 0 "handshake pub-01" -- "$PILOT" handshake hub-01 "metrics" --state-dir "$SCRATCH/pub-01"
    # pub-01 publishes for sim-01: a collector, granted metrics/* beyond its own.
    expect_status 0 "grant pub-01 metrics/*" -- "$PILOT" approve pub-01 --publish 'metrics/*' --state-dir "$SCRATCH/hub-01"
    # The store's node must be trusted before it can subscribe: start it once to register, then ask.
    start_store
    wait_until 15 "st-01 registered" -- registered st-01
    expect_status 0 "handshake st-01" -- "$PILOT" handshake hub-01 "history" --state-dir "$SCRATCH/st-01"
    wait_until 20 "the store's durable subscription at the hub" -- store_subscribed
}

store_subscribed() { "$PILOT" status --json --state-dir "$SCRATCH/hub-01" | grep -q '"store":'; }

# publish_cpu COUNT FROM STEP [PAUSE]: COUNT numbered cpu samples of sim-01 through pub-01,
# timestamps FROM + i*STEP, values i % 1000 / 10, 100 at a time with PAUSE seconds
# between (default 0.1); in the background, PID $PUB.
publish_cpu() {
    python3 -c "
import sys, time
for i in range($1):
    sys.stdout.write('metrics/cpu/sim-01 {\"host\":\"sim-01\",\"cpu_pct\":%.1f,\"load\":0.5,\"cores\":4,\"ts\":%d}\n' % (i % 1000 / 10, $2 + i * $3))
    if i % 100 == 99:
        sys.stdout.flush(); time.sleep(${4:-0.1})
" | "$PILOT" publish --stdin --state-dir "$SCRATCH/pub-01" > /dev/null 2> "$SCRATCH/publish.err" &
    PUB=$!
    PIDS="$PIDS $PUB"
}
