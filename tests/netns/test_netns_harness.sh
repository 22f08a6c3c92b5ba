#!/bin/sh
# Self-test of tests/netns/lib.sh. Builds an internet segment with two
# servers, two eim NAT LANs (a, b) and one symmetric NAT LAN (s), then
# proves with udp_probe.py:
#   1. every LAN host reaches the echo server, which sees the router's
#      public address (NAT works);
#   2. eim keeps the source port for two destinations; symmetric maps the
#      same socket to a different port per destination;
#   3. simultaneous hole punching between a and b gets packets through directly;
#   4. punching between a and s fails, as expected (that needs the relay);
#   5. netns_loss 10 loses 5-15 % of 2,000 probes (and 0 removes it);
# and that netns_cleanup leaves no namespace of the run.
# Exit 0 pass, 77 skip (never under CI=true), anything else fail.
set -eu
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

fail() { netns_fail "$@"; }
ok() { printf 'ok %s\n' "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

START=$(now_ms)
netns_require python3
PY=$(command -v python3)
PROBE=$NETNS_DIR/udp_probe.py
[ -f "$PROBE" ] || fail "missing $PROBE"

netns_setup
netns_add_public pub2
netns_add_nat_lan a eim
netns_add_nat_lan b eim
netns_add_nat_lan s symmetric
netns_add_lan_host a a2
T=$NETNS_STATE # scratch space, removed by netns_cleanup
INET=$(netns_addr inet)
PUB2=$(netns_addr pub2)
ok "0 - topology $NETNS_PREFIX-* built in $(($(now_ms) - START)) ms"

# UDP echo servers (STUN-like): on inet and on a second public host.
netns_exec inet "$PY" "$PROBE" echo --listen "$INET:3478" --lifetime 60 --ready "$T/echo1.ready" >"$T/echo1.log" 2>&1 &
netns_exec pub2 "$PY" "$PROBE" echo --listen "$PUB2:3479" --lifetime 60 --ready "$T/echo2.ready" >"$T/echo2.log" 2>&1 &
netns_wait_file 10 "$T/echo1.ready" || fail "echo server on inet did not start: $(cat "$T/echo1.log")"
netns_wait_file 10 "$T/echo2.ready" || fail "echo server on pub2 did not start: $(cat "$T/echo2.log")"

# whoami HOST LOCAL-PORT: sets SEEN1/SEEN2 to what the two servers saw.
whoami() {
    out=$(netns_exec "$1" "$PY" "$PROBE" whoami --local-port "$2" --server "$INET:3478" --server "$PUB2:3479" 2>&1) ||
        fail "$1 ($(netns_addr "$1")) cannot reach the echo servers through its NAT: $(echo "$out" | tr '\n' ' ')"
    SEEN1=$(echo "$out" | awk 'NR == 1 { print $2 }')
    SEEN2=$(echo "$out" | awk 'NR == 2 { print $2 }')
}

# 1 and 2: NAT works; mapping behaviour per kind (a2 is a second host behind a's router).
[ "$(netns_addr a2)" = 10.1.0.3 ] || fail "the second host of LAN a is at $(netns_addr a2), not 10.1.0.3"
netns_exec a2 "$PY" "$PROBE" echo --listen "$(netns_addr a2):3480" --lifetime 60 --ready "$T/echo3.ready" >"$T/echo3.log" 2>&1 &
netns_wait_file 10 "$T/echo3.ready" || fail "echo server on a2 did not start: $(cat "$T/echo3.log")"
out=$(netns_exec a "$PY" "$PROBE" whoami --local-port 40003 --server "$(netns_addr a2):3480" 2>&1) || fail "a cannot reach a2 on their LAN: $out"
[ "$(echo "$out" | awk 'NR == 1 { print $2 }')" = 10.1.0.2:40003 ] || fail "a2 saw a as $out, not as its LAN address (no NAT between them)"
for host in a a2 b s; do
    public=$(netns_addr "${host%2}-r")
    port=40001
    [ "$host" != a2 ] || port=40002 # a's mapping of 40001 is still in its router's conntrack
    whoami "$host" "$port"
    for seen in "$SEEN1" "$SEEN2"; do
        [ "${seen%:*}" = "$public" ] || fail "the server saw $host as $seen, not as its router's public address $public"
    done
    ok "1 - $host $(netns_addr "$host") reaches inet; the servers see the router's public address $public"
    if [ "$host" = s ]; then
        # A random port per destination; retry once on the 1-in-64k chance of a repeat.
        [ "$SEEN1" != "$SEEN2" ] || whoami "$host" 40011
        [ "$SEEN1" != "$SEEN2" ] || fail "symmetric NAT gave the same mapping $SEEN1 to two destinations"
        [ "${SEEN1##*:}" != 40001 ] || [ "${SEEN2##*:}" != 40001 ] || fail "symmetric NAT kept the source port"
        ok "2 - s (symmetric): one socket, port 40001, is $SEEN1 to inet and $SEEN2 to pub2"
    else
        { [ "${SEEN1##*:}" = "$port" ] && [ "${SEEN2##*:}" = "$port" ]; } ||
            fail "eim NAT did not keep source port $port of $host: inet saw $SEEN1, pub2 saw $SEEN2"
        ok "2 - $host (eim): source port $port kept for both destinations ($SEEN1)"
    fi
done

# punch X Y PORT: simultaneous hole punching from X and Y (local port PORT);
# sets RX/RY to their exit codes and OUTX/OUTY to their reports.
punch() {
    rm -f "$T/$1.addr" "$T/$2.addr"
    netns_exec "$1" "$PY" "$PROBE" punch --local-port "$3" --server "$INET:3478" \
        --me "$T/$1.addr" --peer "$T/$2.addr" >"$T/punch-$1.out" 2>&1 &
    px=$!
    netns_exec "$2" "$PY" "$PROBE" punch --local-port "$3" --server "$INET:3478" \
        --me "$T/$2.addr" --peer "$T/$1.addr" >"$T/punch-$2.out" 2>&1 &
    py=$!
    RX=0; wait "$px" || RX=$?
    RY=0; wait "$py" || RY=$?
    OUTX=$(tr '\n' ' ' <"$T/punch-$1.out")
    OUTY=$(tr '\n' ' ' <"$T/punch-$2.out")
}

# 3: eim <-> eim works directly.
punch a b 40002
{ [ "$RX" = 0 ] && [ "$RY" = 0 ]; } || fail "hole punching between two eim NATs failed: a: $OUTX(exit $RX); b: $OUTY(exit $RY)"
# The packets must come straight from the peer's router, from the mapping it published.
case $OUTX in *"received-from $(cat "$T/b.addr") "*) ;; *) fail "a got b's punch from an unexpected address: $OUTX" ;; esac
case $OUTY in *"received-from $(cat "$T/a.addr") "*) ;; *) fail "b got a's punch from an unexpected address: $OUTY" ;; esac
ok "3 - a <-> b (eim/eim) punched through directly: a $(cat "$T/a.addr") <-> b $(cat "$T/b.addr")"

# 4: eim <-> symmetric fails, as expected (each side gets only exit 2, "nothing from the peer").
punch a s 40003
{ [ "$RX" != 0 ] && [ "$RY" != 0 ]; } || fail "hole punching through the symmetric NAT unexpectedly worked: a: $OUTX; s: $OUTY"
{ [ "$RX" = 2 ] && [ "$RY" = 2 ]; } || fail "punch a <-> s errored instead of just failing: a: $OUTX(exit $RX); s: $OUTY(exit $RY)"
ok "4 - a <-> s (eim/symmetric): no direct path, as expected (s published $(cat "$T/s.addr") but sends from another port; needs the relay)"

# loss COUNT: sets LOST_PCT from COUNT probes a -> inet -> a.
loss() {
    out=$(netns_exec a "$PY" "$PROBE" loss --server "$INET:3478" --count "$1" 2>&1) || fail "loss probe failed: $out"
    LOST_PCT=$(echo "$out" | awk '{ print $8 }')
    LOST=$(echo "$out" | awk '{ print $6 }')
}

# 5: netns_loss.
loss 500
awk -v p="$LOST_PCT" 'BEGIN { exit !(p <= 1) }' || fail "baseline without loss already lost $LOST_PCT % of 500 probes"
netns_loss a 10
loss 2000
awk -v p="$LOST_PCT" 'BEGIN { exit !(p >= 5 && p <= 15) }' || fail "netns_loss a 10 lost $LOST_PCT % of 2000 probes, wanted 5-15 %"
ok "5 - netns_loss a 10: $LOST of 2000 probes lost ($LOST_PCT %)"
netns_loss a 0
loss 500
[ "$LOST" = 0 ] || fail "netns_loss a 0 did not remove the loss: $LOST of 500 lost"
ok "5 - netns_loss a 0: no loss again"

# Cleanup leaves nothing of this run.
prefix=$NETNS_PREFIX
state=$T
netns_cleanup
left=$(ip netns list | awk -v p="$prefix-" 'index($1, p) == 1 { print $1 }' | tr '\n' ' ')
[ -z "$left" ] || fail "namespaces left after netns_cleanup: $left"
[ ! -e "$state" ] || fail "state directory $state left after netns_cleanup"
ok "6 - netns_cleanup removed every namespace of $prefix"
echo "PASS in $(($(now_ms) - START)) ms"
