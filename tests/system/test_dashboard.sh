#!/bin/sh
# The dashboard in a real browser (Debian's chromium, driven by selenium)
# against `pilot up` and three real agent processes: the fleet page lists
# exactly the hosts of /api/hosts; a tag filter narrows the rows; an agent
# stopped shows as down within the host-down time, without a reload; a
# host page's CPU chart holds what `pilot query --json` gives for the same
# series and range (raw, and at a step with its band); a silence set from
# the alerts page reaches the alert router; no console error on any page.
# Then a second `pilot up` bound beyond loopback: refused without TLS, and
# with TLS and a token no page or API answer without the token.
# Screenshots (1280x800 and 390x844) go to $TEST_OUTPUT/test_dashboard.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, which sees python3-selenium
require_command "$PY" python3
require_command chromium chromium
require_command chromedriver chromium-driver
require_command openssl openssl
require_command curl curl
"$PY" -c 'import selenium' 2>/dev/null || skip_or_fail "needs python3-selenium (apt-get install python3-selenium)"
OUT=${TEST_OUTPUT:-$REPO/.test-output}/$TEST_NAME
rm -rf "$OUT" && mkdir -p "$OUT"

HOOK_PORT=$(free_port tcp)
start_bg "$SCRATCH/recorder.log" python3 "$REPO/tests/system/recorder.py" --port "$HOOK_PORT" --out "$SCRATCH/hook.jsonl" --max-seconds 300
PORT=$(free_port tcp)
INTERVAL=2 # pilot up: a host silent for 3 intervals (6 s) is down
"$PILOT" up --state-dir "$SCRATCH/up" --http "127.0.0.1:$PORT" --interval "$INTERVAL" --table-interval 3600 --log-level warning \
    --receiver "webhook:hook=http://127.0.0.1:$HOOK_PORT/" > "$SCRATCH/up.out" 2> "$SCRATCH/up.err" &
UP_PID=$!
PIDS="$PIDS $UP_PID"
wait_until 20 "pilot up's banner" -- grep -q "dashboard   http://127.0.0.1:$PORT/" "$SCRATCH/up.out"
REGISTRY=$(sed -n 's/^  registry    //p' "$SCRATCH/up.out")
HUB=$(sed -n "s/^  aggregator  hub '\([^']*\)'.*/\1/p" "$SCRATCH/up.out")
if [ -z "$REGISTRY" ] || [ -z "$HUB" ]; then fail "the banner names no registry or hub: $(cat "$SCRATCH/up.out")"; fi

AGENTS=""
for spec in web-01:production web-02:production db-01:staging; do
    name=${spec%%:*}; tag=${spec#*:}
    "$PILOT" init --hostname "$name" --registry "$REGISTRY" --hub "$HUB" --tag "$tag" --tag site-a --state-dir "$SCRATCH/$name" > /dev/null || fail "init $name"
    start_bg "$SCRATCH/$name.log" "$PILOT" agent --state-dir "$SCRATCH/$name" --keepalive 1 --tunnel-listen 127.0.0.1:0 --interval "$INTERVAL" --log-level warning
    AGENTS="$AGENTS $name=$LAST_PID"
    wait_until 15 "$name handshake sent" -- "$PILOT" handshake "$HUB" "dashboard test" --state-dir "$SCRATCH/$name"
    wait_until 15 "$name approved at the hub" -- "$PILOT" approve "$name" --state-dir "$SCRATCH/up/node"
done
hosts_up() { curl -sf "http://127.0.0.1:$PORT/api/hosts" | "$PY" -c 'import json,sys; h=json.load(sys.stdin); sys.exit(0 if sum(x["up"] for x in h) == 4 and all(x["tags"] for x in h if x["host"] != sys.argv[1]) else 1)' "$HUB"; }
wait_until 40 "four hosts up in /api/hosts, the agents with their tags" -- hosts_up

# Bad requests get a status and one line saying what was wrong.
bad() { # STATUS PATH [CURL ARGS] : the answer's status, and an error that names the problem
    status=$1; path=$2; shift 2
    code=$(curl -s -o "$SCRATCH/bad.json" -w '%{http_code}' "$@" "http://127.0.0.1:$PORT$path")
    [ "$code" = "$status" ] || fail "$path answered $code, not $status: $(cat "$SCRATCH/bad.json")"
    "$PY" -c 'import json,sys; a=json.load(open(sys.argv[1])); sys.exit(0 if a["api"] == 1 and a["error"] and "\n" not in a["error"] else 1)' "$SCRATCH/bad.json" \
        || fail "$path: no one-line error: $(cat "$SCRATCH/bad.json")"
}
bad 400 "/api/v1/series?host=web-01&from=yesterday"
bad 400 "/api/v1/series?host=web-01&from=0&to=99999999999&step=1"
bad 400 "/api/v1/series?host=web-01&from=0&to=99999999999&step=0"
bad 400 "/api/v1/series"
bad 404 "/api/v1/hosts/no-such-host"
bad 404 "/api/v1/nothing"
bad 403 "/api/v1/silences" -X POST -d "matchers=host=web-01&duration=1h"
bad 403 "/api/v1/silences" -X POST -H "Authorization: Bearer wrong" -d "matchers=host=web-01&duration=1h"

# pilot up's admin token, for the silence the browser sets.
TOKEN_FILE=$(sed -n 's/.*the admin token in \(.*\))$/\1/p' "$SCRATCH/up.out")
[ -s "$TOKEN_FILE" ] || fail "pilot up made no admin token file: $(cat "$SCRATCH/up.out")"

# shellcheck disable=SC2086 # AGENTS is a list of NAME=PID words
"$PY" "$REPO/tests/system/dashboard_browser.py" --url "http://127.0.0.1:$PORT" --pilot "$PILOT" --state-dir "$SCRATCH/up/node" \
    --out "$OUT" --down-after $((3 * INTERVAL)) --admin-token-file "$TOKEN_FILE" --stop db-01 $AGENTS 2> "$SCRATCH/browser.err" \
    || fail "browser: $(tail -5 "$SCRATCH/browser.err")"
"$PILOT" silence list --state-dir "$SCRATCH/up/node" | grep -q "host=web-02" || fail "the silence set in the browser is not at the alert router"
bad 400 "/api/v1/silences" -X POST -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -d "matchers=host=web-01&duration=soon"
bad 400 "/api/v1/silences" -X POST -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -d "matchers=&duration=1h"
kill "$UP_PID"
wait "$UP_PID" || fail "pilot up did not stop cleanly: $(tail -3 "$SCRATCH/up.err")"

# Beyond loopback: refused without a token, naming the flag (pilot up makes
# itself a certificate, test_http_access.sh checks it)…
TLS_PORT=$(free_port tcp)
if "$PILOT" up --state-dir "$SCRATCH/wide" --http "0.0.0.0:$TLS_PORT" --for 5s > "$SCRATCH/wide.out" 2> "$SCRATCH/wide.err"; then fail "pilot up served 0.0.0.0 without a token"; fi
grep -q -- "--http-token" "$SCRATCH/wide.err" || fail "the refusal does not name --http-token: $(cat "$SCRATCH/wide.err")"
# …and with an ECDSA P-256 certificate and a token, nothing without the token.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" \
    -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2> /dev/null || fail "openssl could not make a certificate"
printf 'reader-%s\n' "$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" > "$SCRATCH/token"
chmod 600 "$SCRATCH/token"
"$PILOT" up --state-dir "$SCRATCH/wide" --http "0.0.0.0:$TLS_PORT" --tls-cert "$SCRATCH/cert.pem" --tls-key "$SCRATCH/key.pem" \
    --http-token "@$SCRATCH/token" --interval "$INTERVAL" --table-interval 3600 --log-level warning > "$SCRATCH/wide.out" 2> "$SCRATCH/wide.err" &
WIDE_PID=$!
PIDS="$PIDS $WIDE_PID"
wait_until 20 "the TLS dashboard's banner" -- grep -q "dashboard   https://0.0.0.0:$TLS_PORT/" "$SCRATCH/wide.out"
BASE="https://127.0.0.1:$TLS_PORT"
wait_until 20 "this host in the TLS API" -- curl -sfk -H "Authorization: Bearer $(cat "$SCRATCH/token")" "$BASE/api/v1/hosts"
for path in / /index.html /api/hosts /api/v1/hosts "/api/v1/hosts/$HUB" /api/v1/alerts "/api/v1/series?host=$HUB" /metrics /table; do
    code=$(curl -sk -o "$SCRATCH/body" -w '%{http_code}' "$BASE$path")
    [ "$code" = 401 ] || fail "$path answered $code without the token"
    if grep -q "$HUB" "$SCRATCH/body"; then fail "$path without the token names the host"; fi
done
code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong" "$BASE/api/v1/hosts")
[ "$code" = 401 ] || fail "a wrong token got $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TLS_PORT/api/v1/hosts" || true)
[ "$code" != 200 ] || fail "the TLS port answered in clear"
"$PY" "$REPO/tests/system/dashboard_browser.py" --url "$BASE" --out "$OUT" --sign-in "$SCRATCH/token" --expect-host "$HUB" 2> "$SCRATCH/browser-tls.err" \
    || fail "browser (TLS): $(tail -5 "$SCRATCH/browser-tls.err")"
echo "ok: the dashboard in chromium: fleet = /api/hosts, tag filter, db-01 down live, CPU chart = pilot query (raw and 60 s steps), a silence set from the page, no console errors; beyond loopback refused without TLS and closed without the token; screenshots in $OUT"
