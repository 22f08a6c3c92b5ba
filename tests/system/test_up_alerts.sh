#!/bin/sh
# End to end from the binary: `pilot up --metric-override disk_pct=97
# --group-wait 1s --receiver webhook:hook=URL` → a critical disk_pct
# notification reaches the webhook within two collection intervals plus
# the group wait (with room for a loaded machine), and after a restart
# with the disk back to normal, its resolve. A Slack URL given inline
# works, with a warning that names it and not its secret.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command python3 python3
HOOK_PORT=$(free_port tcp)
start_bg "$SCRATCH/recorder.log" python3 "$REPO/tests/system/recorder.py" --port "$HOOK_PORT" --out "$SCRATCH/hook.jsonl" --max-seconds 120
INTERVAL=2
start_up() { # DISK-PCT
    "$PILOT" up --state-dir "$SCRATCH/up" --http 127.0.0.1:0 --interval "$INTERVAL" --table-interval 3600 --log-level warning \
        --metric-override "disk_pct=$1" --metric-override cpu_pct=5 --metric-override mem_pct=20 \
        --group-wait 1s --group-interval 2s --receiver "webhook:hook=http://127.0.0.1:$HOOK_PORT/" \
        --receiver "slack:chat=http://127.0.0.1:$HOOK_PORT/slack/inline-token-77" > "$SCRATCH/up.out" 2> "$SCRATCH/up.err" &
    UP_PID=$!
    PIDS="$PIDS $UP_PID"
    wait_until 20 "pilot up's banner" -- grep -q "alerts to   webhook:hook" "$SCRATCH/up.out"
}
# notified STATUS: the webhook got a disk_pct notification of that status with a critical alert.
notified() {
    python3 - "$SCRATCH/hook.jsonl" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r["path"] == "/"]
assert any(r["body"]["status"] == sys.argv[2] and r["body"]["groupLabels"] == {"alertname": "disk_pct"}
           and any(a["labels"]["severity"] == "critical" and a["status"] == sys.argv[2] for a in r["body"]["alerts"]) for r in rows)
PY
}
start_up 97
STARTED=$(date +%s)
wait_until 30 "a critical disk_pct notification at the webhook" -- notified firing
ELAPSED=$(( $(date +%s) - STARTED ))
# Two intervals and the group wait, with 10 s to spare for a loaded machine.
[ "$ELAPSED" -le $((2 * INTERVAL + 1 + 10)) ] || fail "the notification took ${ELAPSED}s"
# The Slack URL was given inline: it works, with a warning that names it but not its secret.
grep -q '"path": "/slack/inline-token-77"' "$SCRATCH/hook.jsonl" || fail "the inline Slack receiver got nothing"
grep -q "slack:chat's URL is written inline, so ps shows it" "$SCRATCH/up.err" || fail "no warning about the inline secret: $(cat "$SCRATCH/up.err")"
if grep -q "inline-token-77" "$SCRATCH/up.err" "$SCRATCH/up.out"; then fail "the inline secret appears in pilot up's output"; fi
kill "$UP_PID"
wait "$UP_PID" || fail "pilot up did not stop cleanly: $(cat "$SCRATCH/up.err")"
start_up 40
wait_until 40 "the resolve at the webhook" -- notified resolved
echo "ok: pilot up notified the webhook of disk_pct critical ${ELAPSED}s after its start (interval ${INTERVAL}s, group wait 1s), and of the resolve after a restart"
