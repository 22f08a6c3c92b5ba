#!/bin/sh
# 10,000 messages over one stream between two real nodes on loopback,
# through a relay that loses 10 % of the datagrams both ways and delays each
# by 0-15 ms so that they overtake each other: all arrive, in order.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command python3 python3

start_bg "$SCRATCH/relay.log" python3 "$REPO/tests/system/lossy_relay.py" --listen 127.0.0.1:0 \
    --port-file "$SCRATCH/relay.port" --target-file "$SCRATCH/target" --loss 0.1 --max-delay-ms 15 --lifetime 200
RELAY_PID=$LAST_PID
wait_until 10 "the relay" -- test -s "$SCRATCH/relay.port"
RELAY_PORT=$(cat "$SCRATCH/relay.port")

start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" --log-level warning
wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
for node in a b; do
    "$PILOT" init --hostname "node-$node" --registry "$REGISTRY" --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
# b publishes only the relay's address, so a reaches b through it (and b answers back through it).
start_bg "$SCRATCH/b.log" "$PILOT" agent --state-dir "$SCRATCH/b" --keepalive 1 --tunnel-listen 127.0.0.1:0 --advertise "127.0.0.1:$RELAY_PORT" --log-level warning
start_bg "$SCRATCH/a.log" "$PILOT" agent --state-dir "$SCRATCH/a" --keepalive 1 --tunnel-listen 127.0.0.1:0 --log-level warning
tunnel_of_b() { "$PILOT" status --json --state-dir "$SCRATCH/b" | sed -n 's/.*"tunnel":"\([^"]*\)".*/\1/p'; }
has_tunnel() { [ -n "$(tunnel_of_b 2>/dev/null)" ]; }
wait_until 10 "b's tunnel address" -- has_tunnel
tunnel_of_b > "$SCRATCH/target"
registered() { "$PILOT" status --json --state-dir "$SCRATCH/$1" | grep -q '"registered":true'; }
wait_until 10 "a registered" -- registered a
wait_until 10 "b registered" -- registered b

expect_status 0 "stream through the lossy, reordering relay" -- "$PILOT" ping node-b --stream --count 10000 --state-dir "$SCRATCH/a"
printf '%s\n' "$OUT" | grep -q "^10000 messages echoed complete and in order over one stream by node-b via 127.0.0.1:$RELAY_PORT" \
    || fail "stream through the relay: $OUT $ERR"
kill "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
counters=$(cat "$SCRATCH/relay.log")
dropped=$(printf '%s' "$counters" | sed -n 's/.*dropped=\([0-9]*\).*/\1/p')
reordered=$(printf '%s' "$counters" | sed -n 's/.*reordered=\([0-9]*\).*/\1/p')
[ "${dropped:-0}" -gt 100 ] || fail "the relay dropped too little to prove anything: $counters"
[ "${reordered:-0}" -gt 100 ] || fail "the relay reordered too little to prove anything: $counters"
echo "ok: $OUT (relay: $counters)"
