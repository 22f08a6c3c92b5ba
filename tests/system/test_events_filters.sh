#!/bin/sh
# The event stream end to end between real nodes: filters as designed
# (metrics/*, metrics/*/web-01, an exact topic), the seed's output line,
# --json, bad payloads refused at the publisher, and an untrusted node's
# publish and subscribe refused with a clear error.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
start_fleet

sub() { # NAME FILTER COUNT [FLAGS]
    name=$1; filter=$2; count=$3; shift 3
    "$PILOT" subscribe "$filter" --count "$count" --timeout 30 --state-dir "$SCRATCH/sub-01" "$@" > "$SCRATCH/$name.out" 2> "$SCRATCH/$name.err" &
    eval "${name}_PID=$!"
    PIDS="$PIDS $!"
}
sub all 'metrics/*' 3
sub host 'metrics/*/web-01' 2
sub exact 'metrics/cpu/web-01' 1 --json
wait_until 15 "three subscriptions at the hub" -- hub_connections_at_least 3

# web-01 also publishes for db-01: a node speaks for others only when granted.
expect_status 0 "grant web-01 metrics/*" -- "$PILOT" approve web-01 --publish 'metrics/*' --state-dir "$SCRATCH/hub-01"
for topic in metrics/cpu/web-01 metrics/memory/web-01 metrics/cpu/db-01 health/http/web-01; do
    expect_status 0 "publish $topic" -- "$PILOT" publish "$topic" --data "{\"host\":\"web-01\",\"t\":\"$topic\"}" --state-dir "$SCRATCH/web-01"
done
for name in all host exact; do
    eval "pid=\$${name}_PID"
    # shellcheck disable=SC2154 # set by eval
    wait "$pid" || fail "subscriber $name exited non-zero: $(cat "$SCRATCH/$name.err")"
done
expected_all='[metrics/cpu/web-01] {"host":"web-01","t":"metrics/cpu/web-01"}
[metrics/memory/web-01] {"host":"web-01","t":"metrics/memory/web-01"}
[metrics/cpu/db-01] {"host":"web-01","t":"metrics/cpu/db-01"}'
[ "$(cat "$SCRATCH/all.out")" = "$expected_all" ] || fail "metrics/* got: $(cat "$SCRATCH/all.out")"
expected_host='[metrics/cpu/web-01] {"host":"web-01","t":"metrics/cpu/web-01"}
[metrics/memory/web-01] {"host":"web-01","t":"metrics/memory/web-01"}'
[ "$(cat "$SCRATCH/host.out")" = "$expected_host" ] || fail "metrics/*/web-01 got: $(cat "$SCRATCH/host.out")"
python3 - "$SCRATCH/exact.out" <<'PY' || fail "--json output: $(cat "$SCRATCH/exact.out")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
m = json.loads(lines[0])
assert m["topic"] == "metrics/cpu/web-01" and m["payload"] == {"host": "web-01", "t": "metrics/cpu/web-01"} and m["seq"] >= 1, m
PY

# A consumer that stops reading (SIGSTOP) holds up nobody: another gets all 2,000 at once.
BEFORE=$(hub_count connections)
"$PILOT" subscribe 'bulk/*' --state-dir "$SCRATCH/sub-01" > /dev/null 2>&1 &
SLOW_PID=$!
PIDS="$PIDS $SLOW_PID"
sub fast 'bulk/*' 2000
wait_until 15 "two more subscriptions at the hub" -- hub_connections_at_least $((BEFORE + 2))
kill -STOP "$SLOW_PID"
python3 -c 'print("\n".join("{\"i\":%d}" % i for i in range(2000)))' > "$SCRATCH/bulk"
expect_status 0 "publish 2,000" -- sh -c "\"$PILOT\" publish bulk/x --stdin --state-dir \"$SCRATCH/web-01\" < \"$SCRATCH/bulk\""
# shellcheck disable=SC2154 # set by eval in sub
wait "$fast_PID" || fail "the fast subscriber did not get its 2,000 while another was stopped: $(cat "$SCRATCH/fast.err")"
[ "$(wc -l < "$SCRATCH/fast.out")" = 2000 ] || fail "fast subscriber got $(wc -l < "$SCRATCH/fast.out")"
kill -CONT "$SLOW_PID"

# Bad payloads and topics: refused at once, one line, nothing sent.
expect_status 1 "array payload" -- "$PILOT" publish metrics/cpu/web-01 --data '[1,2]' --state-dir "$SCRATCH/web-01"
expect_one_line_error "array payload"
case "$ERR" in *"the payload must be a JSON object"*) ;; *) fail "array payload: $ERR" ;; esac
expect_status 64 "empty level" -- "$PILOT" publish 'metrics//web-01' --data '{}' --state-dir "$SCRATCH/web-01"
expect_one_line_error "empty level"
printf '{"a":1}\n{"b":\n' > "$SCRATCH/bad-lines"
expect_status 1 "bad stdin line" -- sh -c "\"$PILOT\" publish t/x --stdin --state-dir \"$SCRATCH/web-01\" < \"$SCRATCH/bad-lines\""
expect_one_line_error "bad stdin line"
case "$ERR" in *"stdin line 2: invalid payload"*"(1 before it were)"*) ;; *) fail "bad stdin line: $ERR" ;; esac

# evil-01 is not trusted by the hub: both directions are refused, clearly.
expect_status 1 "untrusted subscribe" -- "$PILOT" subscribe 'metrics/*' --timeout 20 --state-dir "$SCRATCH/evil-01"
expect_one_line_error "untrusted subscribe"
case "$ERR" in *"hub-01 does not trust this node"*"pilot handshake hub-01"*) ;; *) fail "untrusted subscribe: $ERR" ;; esac
expect_status 1 "untrusted publish" -- "$PILOT" publish metrics/cpu/evil-01 --data '{"a":1}' --state-dir "$SCRATCH/evil-01"
expect_one_line_error "untrusted publish"
case "$ERR" in *"hub-01 does not trust this node"*) ;; *) fail "untrusted publish: $ERR" ;; esac
[ "$(spool_count evil-01 spooled)" = 0 ] || fail "a refused publication was spooled"
echo "ok: filters end to end, --json, a stopped consumer holds up nobody, bad payloads, untrusted publish and subscribe refused"
