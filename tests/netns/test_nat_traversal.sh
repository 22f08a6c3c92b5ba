#!/bin/sh
# Real pilot processes across network namespaces: a registry and a beacon
# (serving the registry's nodes, on their tickets) on the "internet", nodes
# behind two endpoint-independent NATs (a, b) and one symmetric NAT (s). a
# and b reach each other directly after a beacon introduction (the relay
# stays at zero); s is reached through the relay
# (its counters rise); pilot ping works across both; with 10 % loss on a
# link, 10,000 messages over a stream arrive complete and in order; a capture of the
# internet segment holds the test's packets and none of a marker string
# sent through the tunnel.
# Exit 0 pass, 77 skip (never under CI=true), anything else fail.
set -eu
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

fail() { netns_fail "$@"; }
ok() { printf 'ok %s\n' "$*"; }
REPO=${REPO:-$(cd "$NETNS_DIR/../.." && pwd)}
PILOT=${PILOT:-$REPO/pilot}
[ -x "$PILOT" ] || fail "no pilot binary at $PILOT (make build)"
netns_require tcpdump

wait_for() { # SECONDS DESCRIPTION CMD...: bounded polling
    limit=$1; what=$2; shift 2
    tries=$((limit * 5))
    while [ "$tries" -gt 0 ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
        tries=$((tries - 1))
    done
    fail "timed out after ${limit}s waiting for: $what"
}

netns_setup
netns_add_nat_lan a eim
netns_add_nat_lan b eim
netns_add_nat_lan s symmetric
T=$NETNS_STATE
INET=$(netns_addr inet)

netns_exec inet tcpdump -i br0 -w "$T/internet.pcap" -U udp > "$T/tcpdump.log" 2>&1 &
netns_exec inet "$PILOT" registry --listen "$INET:9000" --http off --state-dir "$T/registry" --offline-after 30 --log-level warning 2> "$T/registry.log" &
netns_exec inet "$PILOT" beacon --listen "$INET:9001" --registry "$INET:9000" --state-dir "$T/beacon" --log-level warning > /dev/null 2> "$T/beacon.log" &
netns_wait_file 10 "$T/registry/registry.addr" || fail "the registry did not start: $(cat "$T/registry.log")"
netns_wait_file 10 "$T/beacon/beacon.addr" || fail "the beacon did not start: $(cat "$T/beacon.log")"

for node in a b s; do
    "$PILOT" init --hostname "node-$node" --registry "$INET:9000" --beacon "$INET:9001" --state-dir "$T/$node" > /dev/null
    netns_exec "$node" "$PILOT" agent --state-dir "$T/$node" --keepalive 2 --log-level warning 2> "$T/$node.log" &
done
# Each node registers its LAN address, then its public mapping once the beacon told it.
published() { "$PILOT" peers --json --search "node-$1" --state-dir "$T/a" | grep -q '"endpoints":\[[^]]*"100\.64\.0\.'; }
for node in a b s; do wait_for 20 "node-$node to publish its public endpoint" published "$node"; done
ok "1 - registry, beacon and three NATed nodes up; public endpoints learnt from the beacon"

relayed() { "$PILOT" beacon status --json --state-dir "$T/beacon" | sed -n 's/.*"relayed_datagrams":\([0-9]*\).*/\1/p'; }

# a -> b: two endpoint-independent NATs; the beacon introduces them, the path is direct.
out=$("$PILOT" ping node-b --count 4 --interval 0.5 --state-dir "$T/a" || true)
printf '%s\n' "$out" | grep -Eq "^4 sent, [34] received" || fail "ping a -> b: $out"
printf '%s\n' "$out" | grep -q "via $(netns_addr b-r):" || fail "a -> b did not go direct to b's NAT: $out"
[ "$(relayed)" = 0 ] || fail "the beacon relayed $(relayed) datagrams between two EIM NATs"
ok "2 - a <-> b direct through two EIM NATs, relay counters at 0"

# a -> s: s is behind symmetric NAT: no direct path, the relay carries it.
out=$("$PILOT" ping node-s --count 5 --interval 0.5 --state-dir "$T/a" || true)
printf '%s\n' "$out" | grep -Eq "^5 sent, [3-5] received" || fail "ping a -> s: $out"
printf '%s\n' "$out" | grep -q "via relay" || fail "a -> s did not use the relay: $out"
[ "$(relayed)" -gt 0 ] || fail "the relay counters stayed at 0 for the symmetric NAT"
# Every node showed the registry's ticket: the beacon refused none of their hellos.
"$PILOT" beacon status --json --state-dir "$T/beacon" | grep -q 'ticket' && fail "the beacon refused a node's ticket: $("$PILOT" beacon status --json --state-dir "$T/beacon")"
ok "3 - a <-> s through the relay ($(relayed) datagrams relayed), every node served on its registry ticket"

# 10 % random loss on a's link: 10,000 messages over one stream still arrive complete and in order.
netns_loss a 10
out=$("$PILOT" ping node-b --stream --count 10000 --state-dir "$T/a" 2>&1) || fail "stream through 10 % loss: $out"
printf '%s\n' "$out" | grep -q "^10000 messages echoed complete and in order" || fail "stream through 10 % loss: $out"
netns_loss a 0
ok "4 - 10 % loss on a's link: $out"

# A marker sent inside the tunnel (a trust request's justification) never appears on the wire.
MARKER="PILOT-MARKER-$NETNS_ID-plaintext"
"$PILOT" handshake node-b "$MARKER" --state-dir "$T/a" > /dev/null || fail "handshake a -> b"
"$PILOT" handshake node-s "$MARKER" --state-dir "$T/a" > /dev/null || fail "handshake a -> s (relayed)"
"$PILOT" pending --state-dir "$T/b" | grep -q "$MARKER" || fail "b did not receive the marker through the tunnel"
"$PILOT" pending --state-dir "$T/s" | grep -q "$MARKER" || fail "s did not receive the marker through the relay"
sleep 1
size=$(stat -c %s "$T/internet.pcap" 2>/dev/null || echo 0)
[ "$size" -gt 1000 ] || fail "the capture of the internet segment is empty ($size bytes): $(cat "$T/tcpdump.log")"
grep -a -q "$MARKER" "$T/internet.pcap" && fail "the marker appeared in plaintext on the internet segment"
ok "5 - capture of the internet segment: $size bytes, no plaintext marker"
echo "PASS"
