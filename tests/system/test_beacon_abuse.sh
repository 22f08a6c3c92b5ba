#!/bin/sh
# The beacon serves only keys its registry vouches for, and bounds relay per
# target as well as per sender (hardening, item 5). Real processes on
# loopback: a registry, a beacon that learns the registry's key, a node the
# attack aims at, and pilot-bench's beacon-attack speaking the beacon's own
# encodings. Keys the registry never saw (no ticket, a self-signed one, a
# stolen one) get no welcome and no relay; eight registered keys together
# move at most the target's budget toward it, not eight senders' budgets;
# the node renews its short-lived ticket and stays served past its first
# ticket's expiry.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
BENCH=${PILOT_BENCH:-}
if [ -z "$BENCH" ]; then
    for candidate in "$REPO/.build/debug/pilot-bench" "$REPO/.build/release/pilot-bench"; do
        if [ -x "$candidate" ]; then BENCH=$candidate; break; fi
    done
fi
[ -x "${BENCH:-/nonexistent}" ] || skip_or_fail "needs pilot-bench (swift build --product pilot-bench, or PILOT_BENCH=PATH)"

# Budgets small enough that eight senders' worth and one target's differ tenfold.
PER_SENDER=500 PER_TARGET=300 SECONDS_FLOOD=2 KEYS=8 RATE=600 SIZE=1000
LIFETIME=6

# Bounded: a beacon that starts anyway (it would serve anyone) is stopped and fails the check.
expect_status 64 "a beacon with no registry" -- timeout 10 "$PILOT" beacon --listen 127.0.0.1:0 --state-dir "$SCRATCH/nobeacon"
expect_one_line_error "a beacon with no registry"
printf '%s' "$ERR" | grep -q -- "--registry" || fail "the refusal does not name --registry: $ERR"
expect_status 64 "a beacon with a malformed registry key" -- timeout 10 "$PILOT" beacon --listen 127.0.0.1:0 --state-dir "$SCRATCH/nobeacon" --registry-key nonsense
expect_one_line_error "a beacon with a malformed registry key"

start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" \
    --beacon-ticket-lifetime "$LIFETIME" --log-level warning
wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
start_bg "$SCRATCH/beacon.log" "$PILOT" beacon --listen 127.0.0.1:0 --state-dir "$SCRATCH/beacon" --registry "$REGISTRY" --skew 1 \
    --relay-datagrams-per-second "$PER_SENDER" --relay-bytes-per-second $((PER_SENDER * SIZE)) \
    --relay-target-datagrams-per-second "$PER_TARGET" --relay-target-bytes-per-second $((PER_TARGET * SIZE)) --log-level warning
wait_until 10 "beacon address" -- test -s "$SCRATCH/beacon/beacon.addr"
BEACON=$(cat "$SCRATCH/beacon/beacon.addr")
status() { "$PILOT" beacon status --json --state-dir "$SCRATCH/beacon"; }
number() { status | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
dropped() { n=$(status | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"); echo "${n:-0}"; }
wait_until 10 "the beacon to learn the registry's key" -- sh -c "'$PILOT' beacon status --json --state-dir '$SCRATCH/beacon' | grep -q '\"registry_key\":\"'"
test -s "$SCRATCH/beacon/registry.key" || fail "the beacon did not pin the registry's key"

# The target: a real node with the beacon, which shows its ticket in every hello.
"$PILOT" init --hostname target-01 --registry "$REGISTRY" --beacon "$BEACON" --state-dir "$SCRATCH/target" > /dev/null || fail "init target"
start_bg "$SCRATCH/target.log" "$PILOT" agent --state-dir "$SCRATCH/target" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level warning
wait_until 15 "the target's ticketed hello to be welcome" -- sh -c "'$PILOT' beacon status --json --state-dir '$SCRATCH/beacon' | grep -q '\"nodes\":1'"
TARGET=$("$PILOT" status --json --state-dir "$SCRATCH/target" | sed -n 's/.*"public_key":"\([^"]*\)".*/\1/p')
[ -n "$TARGET" ] || fail "no public key in the target's status"
HELLOS_START=$(number hellos)

# 1. Strangers: fresh keys the registry never saw, and one showing another node's real ticket.
out=$("$BENCH" beacon-attack --mode strangers --registry "$REGISTRY" --beacon "$BEACON" --target "$TARGET" \
    --keys "$KEYS" --seconds 1 --rate "$RATE" --size "$SIZE" 2> "$SCRATCH/attack1.err") || fail "beacon-attack strangers: $(cat "$SCRATCH/attack1.err")"
printf '%s\n' "$out" | grep -q "welcomed 0 " || fail "strangers were welcomed: $out"
[ "$(number relayed_datagrams)" = 0 ] || fail "the beacon relayed $(number relayed_datagrams) datagrams for keys the registry never saw ($out)"
[ "$(dropped 'hello without a ticket')" -ge 4 ] || fail "hellos without a ticket not counted: $(status)"
[ "$(dropped 'ticket badly signed')" -ge 4 ] || fail "self-signed tickets not counted: $(status)"
[ "$(dropped 'ticket for another key')" -ge 1 ] || fail "a stolen ticket not counted: $(status)"
[ "$(dropped 'relay from an endpoint without a hello')" -gt 0 ] || fail "the strangers' relay datagrams not counted: $(status)"
"$PILOT" beacon status --state-dir "$SCRATCH/beacon" | grep -q "^dropped .*hello without a ticket" || fail "pilot beacon status does not show why: $("$PILOT" beacon status --state-dir "$SCRATCH/beacon")"
echo "ok 1 - $KEYS unregistered keys: no welcome, 0 bytes relayed ($out)"

# 2. Registered keys, with the registry's real tickets, all toward one target.
out=$("$BENCH" beacon-attack --mode registered --registry "$REGISTRY" --beacon "$BEACON" --target "$TARGET" \
    --keys "$KEYS" --seconds "$SECONDS_FLOOD" --rate "$RATE" --size "$SIZE" 2> "$SCRATCH/attack2.err") || fail "beacon-attack registered: $(cat "$SCRATCH/attack2.err")"
printf '%s\n' "$out" | grep -q "welcomed $KEYS " || fail "registered keys were not all welcomed: $out"
relayed=$(number relayed_datagrams); bytes=$(number relayed_bytes)
# One second's burst plus the flood's seconds, one more for timing slack; eight senders' budgets would be ~12,000.
bound=$((PER_TARGET * (SECONDS_FLOOD + 2)))
[ "$relayed" -le "$bound" ] || fail "relayed $relayed datagrams toward one target from $KEYS keys, more than its bound $bound ($out)"
[ "$bytes" -le $((bound * SIZE)) ] || fail "relayed $bytes bytes toward one target, more than $((bound * SIZE))"
[ "$relayed" -ge "$PER_TARGET" ] || fail "registered keys got only $relayed datagrams relayed (expected at least the target's burst, $PER_TARGET)"
[ "$(dropped 'relay target budget exceeded')" -gt 0 ] || fail "the target's budget was never reached: $(status)"
echo "ok 2 - $KEYS registered keys toward one target: $relayed datagrams, $bytes bytes relayed (bound $bound; $out)"

# 3. The node's ticket lasts $LIFETIME s; it renews at half of that and is still served past the first expiry.
sleep $((LIFETIME + 2))
[ "$(dropped 'ticket expired')" = 0 ] || fail "the renewing node's ticket expired at the beacon: $(status)"
[ "$(number hellos)" -ge $((HELLOS_START + 2)) ] || fail "no hellos with renewed tickets ($HELLOS_START, then $(number hellos))"
before=$(number relayed_datagrams)
out=$("$BENCH" beacon-attack --mode registered --registry "$REGISTRY" --beacon "$BEACON" --target "$TARGET" \
    --keys 1 --seconds 0.3 --rate 100 --size 100 2> "$SCRATCH/attack3.err") || fail "beacon-attack after renewal: $(cat "$SCRATCH/attack3.err")"
[ "$(number relayed_datagrams)" -gt "$before" ] || fail "after its first ticket expired the target is no longer served: $(status)"
echo "ok 3 - the target renewed its ${LIFETIME}s ticket and is still served after the first one expired"
