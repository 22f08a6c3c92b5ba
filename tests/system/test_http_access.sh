#!/bin/sh
# HTTP beyond loopback is never in clear or open (hardening, item 3): the
# registry's view and the store's read API refuse to start on a
# non-loopback --http without TLS and a token, naming the flag; with them,
# nothing answers without the token. A join-token registry's view asks for
# a token wherever it listens: without --http-token it shows nobody.
# Without --tls-cert, a role beyond loopback serves the self-signed
# certificate `pilot init` made in its state directory (pilot up makes its own).
# (The aggregator's dashboard is test_dashboard.sh.)
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command curl curl
require_command openssl openssl
secret() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
printf 'fleet-%s\n' "$(secret)" > "$SCRATCH/join"
printf 'http-%s\n' "$(secret)" > "$SCRATCH/http-token"
chmod 600 "$SCRATCH/join" "$SCRATCH/http-token"
HTTP_TOKEN=$(cat "$SCRATCH/http-token")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" \
    -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2> /dev/null || fail "openssl could not make a certificate"
TLS="--tls-cert $SCRATCH/cert.pem --tls-key $SCRATCH/key.pem"

# Refused beyond loopback without TLS, or without a token, naming the flag.
P=$(free_port tcp)
expect_status 64 "a registry on 0.0.0.0 without TLS" -- "$PILOT" registry --listen 127.0.0.1:0 --http "0.0.0.0:$P" --state-dir "$SCRATCH/r0"
expect_one_line_error "a registry on 0.0.0.0 without TLS"
printf '%s' "$ERR" | grep -q -- "--tls-cert" || fail "the registry's refusal does not name --tls-cert: $ERR"
printf '%s' "$ERR" | grep -q "pilot init --state-dir $SCRATCH/r0" || fail "the registry's refusal does not say that pilot init makes a certificate: $ERR"
# shellcheck disable=SC2086 # TLS is a list of flags
expect_status 64 "a registry on 0.0.0.0 without a token" -- "$PILOT" registry --listen 127.0.0.1:0 --http "0.0.0.0:$P" $TLS --state-dir "$SCRATCH/r0"
printf '%s' "$ERR" | grep -q -- "--http-token" || fail "the registry's refusal does not name --http-token: $ERR"
"$PILOT" init --hostname st-00 --hub hub-01 --state-dir "$SCRATCH/st-00" > /dev/null || fail "init st-00"
rm "$SCRATCH/st-00/tls.crt" "$SCRATCH/st-00/tls.key"
expect_status 64 "a store on 0.0.0.0 without TLS" -- "$PILOT" store --state-dir "$SCRATCH/st-00" --http "0.0.0.0:$P" --http-token "@$SCRATCH/http-token"
printf '%s' "$ERR" | grep -q -- "--tls-cert" || fail "the store's refusal does not name --tls-cert: $ERR"
printf '%s' "$ERR" | grep -q "pilot init" || fail "the store's refusal does not name pilot init: $ERR"
expect_status 64 "a token written inline" -- "$PILOT" store --state-dir "$SCRATCH/st-00" --http "127.0.0.1:$P" --http-token "$HTTP_TOKEN"
printf '%s' "$ERR" | grep -q "@FILE" || fail "an inline --http-token is not refused: $ERR"

# A join-token registry on loopback, no --http-token: its view names nobody.
start_bg "$SCRATCH/r1.log" "$PILOT" registry --listen 127.0.0.1:0 --http 127.0.0.1:0 --state-dir "$SCRATCH/r1" --join-token "@$SCRATCH/join" --log-level warning
wait_until 10 "the first registry's addresses" -- test -s "$SCRATCH/r1/registry-http.addr"
"$PILOT" init --hostname web-01 --registry "$(cat "$SCRATCH/r1/registry.addr")" --join-token "@$SCRATCH/join" --state-dir "$SCRATCH/web-01" > /dev/null
start_bg "$SCRATCH/web-01.log" "$PILOT" agent --state-dir "$SCRATCH/web-01" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level warning
wait_until 15 "web-01 registered" -- sh -c "'$PILOT' status --json --state-dir '$SCRATCH/web-01' | grep -q '\"registered\":true'"
for path in / /api/nodes; do
    code=$(curl -s -o "$SCRATCH/body" -w '%{http_code}' "http://$(cat "$SCRATCH/r1/registry-http.addr")$path")
    [ "$code" = 401 ] || fail "a join-token registry's $path answered $code without a token"
    if grep -q web-01 "$SCRATCH/body"; then fail "a join-token registry's $path names web-01"; fi
done

# With TLS and a token on 0.0.0.0: the registry's view and a store's read API answer only with the token.
RP=$(free_port tcp)
# shellcheck disable=SC2086 # TLS is a list of flags
start_bg "$SCRATCH/r2.log" "$PILOT" registry --listen 127.0.0.1:0 --http "0.0.0.0:$RP" $TLS --http-token "@$SCRATCH/http-token" \
    --state-dir "$SCRATCH/r2" --join-token "@$SCRATCH/join" --log-level warning
wait_until 10 "the second registry's address" -- test -s "$SCRATCH/r2/registry.addr"
"$PILOT" init --hostname st-01 --hub hub-01 --registry "$(cat "$SCRATCH/r2/registry.addr")" --join-token "@$SCRATCH/join" --state-dir "$SCRATCH/st-01" > /dev/null
SP=$(free_port tcp)
# shellcheck disable=SC2086 # TLS is a list of flags
start_bg "$SCRATCH/st-01.log" "$PILOT" store --state-dir "$SCRATCH/st-01" --tunnel-listen 127.0.0.1:0 --http "0.0.0.0:$SP" $TLS \
    --http-token "@$SCRATCH/http-token" --log-level warning
wait_until 15 "st-01 registered" -- sh -c "'$PILOT' status --json --state-dir '$SCRATCH/st-01' | grep -q '\"registered\":true'"
listed() { curl -sfk -H "Authorization: Bearer $HTTP_TOKEN" "https://127.0.0.1:$RP/api/nodes" | grep -q '"hostname":"st-01"'; }
wait_until 10 "st-01 in the registry's view with the token" -- listed
wait_until 10 "the store's read API with the token" -- curl -sfk -H "Authorization: Bearer $HTTP_TOKEN" "https://127.0.0.1:$SP/api/v1/labels"
for url in "https://127.0.0.1:$RP/" "https://127.0.0.1:$RP/api/nodes" "https://127.0.0.1:$SP/api/v1/labels" "https://127.0.0.1:$SP/api/v1/query?query=cpu_pct"; do
    code=$(curl -sk -o "$SCRATCH/body" -w '%{http_code}' "$url")
    [ "$code" = 401 ] || fail "$url answered $code without the token"
    if grep -q st-01 "$SCRATCH/body"; then fail "$url without the token names st-01"; fi
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-$HTTP_TOKEN" "$url")
    [ "$code" = 401 ] || fail "$url answered $code to a wrong token"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RP/api/nodes" || true)
[ "$code" != 200 ] || fail "the registry's TLS port answered in clear"

# pilot init makes a self-signed ECDSA P-256 certificate for the node's name,
# localhost and 127.0.0.1 (tls.key 0600) and prints the fingerprint openssl
# prints; run again, it keeps the pair.
"$PILOT" init --hostname st-02 --hub hub-01 --registry "$(cat "$SCRATCH/r2/registry.addr")" --join-token "@$SCRATCH/join" \
    --state-dir "$SCRATCH/st-02" > "$SCRATCH/init.out" || fail "init st-02"
CRT="$SCRATCH/st-02/tls.crt"
test -s "$CRT" -a -s "$SCRATCH/st-02/tls.key" || fail "pilot init made no tls.crt and tls.key: $(ls "$SCRATCH/st-02")"
[ "$(stat -c %a "$SCRATCH/st-02/tls.key")" = 600 ] || fail "tls.key has mode $(stat -c %a "$SCRATCH/st-02/tls.key"), not 600"
PRINTED=$(sed -n 's/^  tls sha256:  //p' "$SCRATCH/init.out")
FROM_OPENSSL=$(openssl x509 -noout -fingerprint -sha256 -in "$CRT" | sed 's/^[^=]*=//')
test -n "$PRINTED" -a "$PRINTED" = "$FROM_OPENSSL" || fail "pilot init printed fingerprint '$PRINTED', openssl says '$FROM_OPENSSL'"
openssl x509 -noout -text -in "$CRT" > "$SCRATCH/crt.txt" || fail "openssl cannot read tls.crt"
for want in "Subject: CN ?= ?st-02" "ASN1 OID: prime256v1" "ecdsa-with-SHA256" "CA:FALSE" "Digital Signature" "TLS Web Server Authentication" \
    "DNS:st-02, DNS:localhost, IP Address:127.0.0.1"; do
    grep -Eq "$want" "$SCRATCH/crt.txt" || fail "tls.crt lacks '$want': $(cat "$SCRATCH/crt.txt")"
done
openssl verify -check_ss_sig -CAfile "$CRT" "$CRT" > /dev/null 2>&1 || fail "tls.crt's own signature does not verify: $(openssl verify -check_ss_sig -CAfile "$CRT" "$CRT" 2>&1)"
"$PILOT" init --state-dir "$SCRATCH/st-02" > "$SCRATCH/init-again.out" || fail "init st-02 again"
grep -q "^  tls sha256:  $PRINTED\$" "$SCRATCH/init-again.out" || fail "init again changed the certificate: $(cat "$SCRATCH/init-again.out")"

# A store beyond loopback with no --tls-* serves HTTPS with that certificate:
# curl trusts it by the file alone, for the node's name, and only with the token.
SP2=$(free_port tcp)
start_bg "$SCRATCH/st-02.log" "$PILOT" store --state-dir "$SCRATCH/st-02" --tunnel-listen 127.0.0.1:0 --http "0.0.0.0:$SP2" \
    --http-token "@$SCRATCH/http-token"
pinned() { curl -s --cacert "$CRT" --resolve "st-02:$SP2:127.0.0.1" "$@"; }
wait_until 15 "st-02's read API over HTTPS with pilot init's certificate" -- pinned -f -H "Authorization: Bearer $HTTP_TOKEN" "https://st-02:$SP2/api/v1/labels"
code=$(pinned -o /dev/null -w '%{http_code}' "https://st-02:$SP2/api/v1/labels")
[ "$code" = 401 ] || fail "st-02's read API answered $code without the token"
if curl -s --cacert "$SCRATCH/cert.pem" --resolve "st-02:$SP2:127.0.0.1" -o /dev/null "https://st-02:$SP2/api/v1/labels"; then
    fail "curl trusting another certificate accepted st-02's"
fi
grep -q "$PRINTED" "$SCRATCH/st-02.log" || fail "the store's log does not name its certificate's fingerprint: $(head -5 "$SCRATCH/st-02.log")"

# pilot up beyond loopback without --tls-* makes the pair in its node directory.
UP_PORT=$(free_port tcp)
start_bg "$SCRATCH/up.log" "$PILOT" up --state-dir "$SCRATCH/up" --http "0.0.0.0:$UP_PORT" --http-token "@$SCRATCH/http-token" --for 60s
wait_until 30 "pilot up's dashboard over HTTPS with its own certificate" -- \
    curl -sf --cacert "$SCRATCH/up/node/tls.crt" --resolve "localhost:$UP_PORT:127.0.0.1" -H "Authorization: Bearer $HTTP_TOKEN" "https://localhost:$UP_PORT/api/v1/hosts"
[ "$(stat -c %a "$SCRATCH/up/node/tls.key")" = 600 ] || fail "pilot up's tls.key is not mode 600"

for log in r1 r2 st-01 st-02 web-01 up; do
    if grep -q "$HTTP_TOKEN" "$SCRATCH/$log.log"; then fail "the HTTP token is in $log's log"; fi
done
echo "ok: registry and store refuse a non-loopback --http without TLS or a token; with them, 401 without the token; a join-token registry's view shows nobody without --http-token; pilot init's self-signed P-256 certificate (fingerprint as openssl's) serves a store's and pilot up's HTTPS that curl --cacert accepts"
