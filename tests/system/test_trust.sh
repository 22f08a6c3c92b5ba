#!/bin/sh
# Trust between real nodes on loopback: a handshake waits for the other
# operator, approve makes it mutual, the same fleet join token approves at
# once, a hostname can't be claimed by another key's request, and
# reject/untrust work; every answer travels inside the encrypted tunnel.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"

start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" --log-level warning
wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")

for node in web-01 db-01 app-01 ops-01; do
    token=""
    case $node in web-01|app-01) token="--join-token fleet-secret-1" ;; esac
    # shellcheck disable=SC2086 # the token flag is two words or none
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --state-dir "$SCRATCH/$node" $token > /dev/null || fail "init $node"
    start_bg "$SCRATCH/$node.log" "$PILOT" agent --state-dir "$SCRATCH/$node" --keepalive 1 --tunnel-listen 127.0.0.1:0 --log-level notice
done
registered() { "$PILOT" status --json --state-dir "$SCRATCH/$1" | grep -q '"registered":true'; }
for node in web-01 db-01 app-01 ops-01; do wait_until 10 "$node registered" -- registered "$node"; done

# web-01 asks db-01 (no shared token): pending on both sides until db-01's operator approves.
expect_status 0 "handshake" -- "$PILOT" handshake db-01 "metrics for the hub" --state-dir "$SCRATCH/web-01"
printf '%s' "$OUT" | grep -q "waiting for its operator" || fail "handshake should be pending: $OUT"
expect_status 0 "pending at db-01" -- "$PILOT" pending --state-dir "$SCRATCH/db-01"
printf '%s\n' "$OUT" | grep -q '^web-01 .*"metrics for the hub"' || fail "db-01 does not show web-01's request: $OUT"
expect_status 0 "trust at db-01" -- "$PILOT" trust --state-dir "$SCRATCH/db-01"
[ "$OUT" = "no trusted peers" ] || fail "db-01 trusts before approving: $OUT"
expect_status 0 "approve" -- "$PILOT" approve web-01 --state-dir "$SCRATCH/db-01"
mutual() { "$PILOT" trust --state-dir "$SCRATCH/web-01" | grep -q '^db-01 '; }
wait_until 5 "web-01 to trust db-01 after the approval" -- mutual
"$PILOT" trust --state-dir "$SCRATCH/db-01" | grep -q '^web-01 ' || fail "db-01 does not list web-01 as trusted"
[ "$(stat -c %a "$SCRATCH/db-01/trust.json")" = 600 ] || fail "trust.json is not mode 0600"

# app-01 and web-01 hold the same join token: approved at once, both ways.
expect_status 0 "handshake with the fleet token" -- "$PILOT" handshake web-01 "same fleet" --state-dir "$SCRATCH/app-01"
printf '%s' "$OUT" | grep -q "web-01 trusts this node" || fail "same-token handshake not approved at once: $OUT"
"$PILOT" trust --state-dir "$SCRATCH/web-01" | grep -q '^app-01 ' || fail "web-01 did not trust app-01"
grep -q "fleet-secret-1" "$SCRATCH/web-01.log" "$SCRATCH/app-01.log" && fail "the join token reached a log"

# ops-01 asks db-01, and db-01's operator rejects it.
expect_status 0 "handshake ops" -- "$PILOT" handshake db-01 "let me in" --state-dir "$SCRATCH/ops-01"
expect_status 0 "reject" -- "$PILOT" reject ops-01 --state-dir "$SCRATCH/db-01"
"$PILOT" trust --state-dir "$SCRATCH/db-01" | grep -q '^ops-01 ' && fail "a rejected node is trusted"
expect_status 1 "approve after reject" -- "$PILOT" approve ops-01 --state-dir "$SCRATCH/db-01"
expect_one_line_error "approve after reject"
case "$ERR" in *"no pending trust request from 'ops-01'"*) ;; *) fail "approve after reject: $ERR" ;; esac

# untrust, and clear errors for unknown hosts.
expect_status 0 "untrust" -- "$PILOT" untrust web-01 --state-dir "$SCRATCH/db-01"
expect_status 0 "trust after untrust" -- "$PILOT" trust --state-dir "$SCRATCH/db-01"
[ "$OUT" = "no trusted peers" ] || fail "untrust left: $OUT"
expect_status 1 "handshake unknown" -- "$PILOT" handshake nosuch "x" --state-dir "$SCRATCH/db-01"
expect_one_line_error "handshake unknown"
case "$ERR" in *"no node named 'nosuch'"*) ;; *) fail "handshake nosuch: $ERR" ;; esac
echo "ok: handshake, pending, approve, fleet-token auto-approval, reject, untrust"
