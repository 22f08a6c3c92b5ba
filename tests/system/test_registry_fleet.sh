#!/bin/sh
# Real processes of the built binary on loopback: a registry and three nodes
# register, tag, search by tag; one stops heartbeating (SIGSTOP) and shows
# offline after the shortened timeout, then online again with the same
# address; the registry is killed with -9 and restarted, and every node is
# still listed with its address and tags. Also: a changed registry key is
# refused naming both fingerprints.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"

start_registry() { # LISTEN
    "$PILOT" registry --listen "$1" --http 127.0.0.1:0 --state-dir "$SCRATCH/registry" --offline-after 3 --log-level warning \
        > "$SCRATCH/registry.out" 2> "$SCRATCH/registry.log" &
    REGISTRY_PID=$!
    PIDS="$PIDS $REGISTRY_PID"
}

rm -f "$SCRATCH/registry/registry.addr"
start_registry 127.0.0.1:0
wait_until 10 "registry address file" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
HTTP=$(cat "$SCRATCH/registry/registry-http.addr")

for node in web-01 web-02 db-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
    "$PILOT" agent --state-dir "$SCRATCH/$node" --keepalive 1 --tunnel-listen 127.0.0.1:0 --log-level warning 2> "$SCRATCH/$node.log" &
    eval "PID_$(echo "$node" | tr - _)=$!"
    PIDS="$PIDS $!"
done

count_online() { # N: the fleet lists exactly N nodes, all online
    out=$("$PILOT" peers --state-dir "$SCRATCH/db-01" 2>/dev/null) || return 1
    [ "$(printf '%s\n' "$out" | grep -c ' online$')" = "$1" ]
}
wait_until 15 "three nodes online" -- count_online 3

# pilot ping through the encrypted tunnel, by hostname and by address.
expect_status 0 "ping db-01" -- "$PILOT" ping db-01 --count 3 --interval 0.1 --state-dir "$SCRATCH/web-01"
printf '%s\n' "$OUT" | grep -q "^3 sent, 3 received, 0% loss" || fail "ping db-01: $OUT"
printf '%s\n' "$OUT" | grep -Eq "^reply from db-01 \(1:0001\.0000\.000[1-3]\) via 127\.0\.0\.1:[0-9]+: seq=1 time=" || fail "ping line: $OUT"
DB_ADDRESS=$(printf '%s\n' "$OUT" | sed -n 's/^reply from db-01 (\([^)]*\)).*/\1/p' | head -n 1)
expect_status 0 "ping by address" -- "$PILOT" ping "$DB_ADDRESS" --count 1 --state-dir "$SCRATCH/web-02"
expect_status 1 "ping an unknown host" -- "$PILOT" ping nosuch --count 1 --interval 0 --state-dir "$SCRATCH/web-01"
printf '%s\n' "$OUT" | grep -q "no node named 'nosuch'" || fail "ping nosuch: $OUT"

expect_status 0 "set-tags web-01" -- "$PILOT" set-tags web production us-east --state-dir "$SCRATCH/web-01"
[ "$OUT" = "tags: [web, production, us-east]" ] || fail "set-tags printed: $OUT"
expect_status 0 "set-tags web-02" -- "$PILOT" set-tags web --state-dir "$SCRATCH/web-02"
expect_status 0 "search by tag" -- "$PILOT" peers --search tag:production --state-dir "$SCRATCH/db-01"
[ "$(printf '%s\n' "$OUT" | wc -l)" = 1 ] || fail "tag:production should list one node: $OUT"
printf '%s\n' "$OUT" | grep -Eq '^1:0001\.0000\.000[1-3] +web-01 +\[web, production, us-east\] +online$' || fail "unexpected peers line: $OUT"
expect_status 0 "search by tag web" -- "$PILOT" peers --search tag:web --state-dir "$SCRATCH/db-01"
[ "$(printf '%s\n' "$OUT" | wc -l)" = 2 ] || fail "tag:web should list two nodes: $OUT"
expect_status 0 "status" -- "$PILOT" status --json --state-dir "$SCRATCH/web-02"
WEB02_ADDRESS=$(printf '%s' "$OUT" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p')
[ -n "$WEB02_ADDRESS" ] || fail "status gave no address: $OUT"
curl -fsS "http://$HTTP/api/nodes" | grep -q '"hostname":"web-02"' || fail "/api/nodes does not list web-02"

# web-02 stops heartbeating: offline after the 3 s window, online again after.
kill -STOP "$PID_web_02"
line_of() { "$PILOT" peers --search "$1" --state-dir "$SCRATCH/db-01" 2>/dev/null; }
is_presence() { line_of "$1" | grep -q " $2\$"; }
wait_until 10 "web-02 offline" -- is_presence web-02 offline
is_presence web-01 online || fail "web-01 went offline with web-02"
kill -CONT "$PID_web_02"
wait_until 10 "web-02 online again" -- is_presence web-02 online
line_of web-02 | grep -q "^$WEB02_ADDRESS " || fail "web-02 came back with another address: $(line_of web-02)"

# The registry dies (kill -9) and restarts on the same port: nothing is lost.
kill -9 "$REGISTRY_PID"
wait "$REGISTRY_PID" 2>/dev/null || true
start_registry "$REGISTRY"
rm -f "$SCRATCH/registry/registry-http.addr"
api_nodes() { curl -fsS "http://$(cat "$SCRATCH/registry/registry-http.addr")/api/nodes"; }
wait_until 10 "registry restarted" -- api_nodes
nodes=$(api_nodes)
for node in web-01 web-02 db-01; do
    printf '%s' "$nodes" | grep -q "\"hostname\":\"$node\"" || fail "$node lost after kill -9: $nodes"
done
printf '%s' "$nodes" | grep -q '"tags":\["web","production","us-east"\]' || fail "web-01's tags lost after kill -9: $nodes"
printf '%s' "$nodes" | grep -q "\"address\":\"$WEB02_ADDRESS\"" || fail "web-02's address changed after kill -9"
wait_until 15 "nodes back online after the restart" -- count_online 3

# A node that pinned another key refuses this registry, naming both fingerprints.
"$PILOT" init --hostname stranger --registry "$REGISTRY" --state-dir "$SCRATCH/stranger" > /dev/null
other=$("$PILOT" init --hostname other --state-dir "$SCRATCH/other-key" | sed -n 's/^public key: //p')
"$PILOT" agent --state-dir "$SCRATCH/stranger" --registry-key "$other" --keepalive 1 --log-level error 2> /dev/null &
PIDS="$PIDS $!"
refused() { "$PILOT" status --state-dir "$SCRATCH/stranger" | grep -q "is pinned; refusing"; }
wait_until 10 "the stranger to refuse the registry's key" -- refused
"$PILOT" peers --state-dir "$SCRATCH/db-01" | grep -q stranger && fail "a node with a mismatched pin registered anyway"
echo "ok: register, tags, search, ping, offline and back, kill -9 restart, key pinning"
