#!/bin/sh
# The alert router inside the aggregator, configured by config lines, with
# real receivers on loopback: a recording HTTP server for the webhook
# (Alertmanager's webhook JSON, version 4), Slack and PagerDuty (Events
# API v2) shapes, a real SMTP server that requires STARTTLS and AUTH LOGIN
# (aiosmtpd), an exec receiver, and Debian's prometheus-alertmanager fed
# through its /api/v2/alerts. db-01 reports its disk 97 % full → every
# receiver gets the critical alert, each body checked field by field;
# Alertmanager still lists it after 30 s with resolve_timeout 10s (the
# router re-posts); `pilot alert-router test`, `pilot silence`, `pilot
# status` without secrets; db-01's disk back to normal → the resolve
# reaches the webhook, PagerDuty and Alertmanager. Bad configuration is
# refused naming FILE:LINE.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/system/events_fleet.sh
. "$(dirname "$0")/events_fleet.sh"
require_command python3 python3
require_command curl curl
require_command openssl openssl
require_command prometheus-alertmanager prometheus-alertmanager
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || skip_or_fail "needs python3-aiosmtpd (apt-get install python3-aiosmtpd)"

HOOK_PORT=$(free_port tcp)
start_bg "$SCRATCH/recorder.log" python3 "$REPO/tests/system/recorder.py" --port "$HOOK_PORT" --out "$SCRATCH/requests.jsonl" --max-seconds 240
mkdir -p "$SCRATCH/smtp"
SMTP_PORT=$(free_port tcp)
start_bg "$SCRATCH/smtp.log" /usr/bin/python3 "$REPO/tests/system/smtp_server.py" --dir "$SCRATCH/smtp" --out "$SCRATCH/mail.jsonl" \
    --port "$SMTP_PORT" --user pilot --password 'mail-pass-9' --mechanisms LOGIN --max-seconds 240
AM_PORT=$(free_port tcp)
cat > "$SCRATCH/alertmanager.yml" <<EOF
global:
  resolve_timeout: 10s
route:
  receiver: blackhole
receivers:
  - name: blackhole
EOF
start_bg "$SCRATCH/alertmanager.log" prometheus-alertmanager --config.file "$SCRATCH/alertmanager.yml" --storage.path "$SCRATCH/am-data" \
    --web.listen-address "127.0.0.1:$AM_PORT" --cluster.listen-address ""
cat > "$SCRATCH/exec.sh" <<EOF
#!/bin/sh
cat >> "$SCRATCH/exec.jsonl"
echo >> "$SCRATCH/exec.jsonl"
EOF
chmod 755 "$SCRATCH/exec.sh"
printf 'http://127.0.0.1:%s/slack/T000/B000/slack-path-secret\n' "$HOOK_PORT" > "$SCRATCH/slack-url"
printf 'mail-pass-9\n' > "$SCRATCH/smtp-password"
chmod 600 "$SCRATCH/slack-url" "$SCRATCH/smtp-password"
export PD_KEY=pd-routing-key-0123456789abcdef

start_registry
for node in hub-01 db-01; do
    "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token fleet-secret-1 --state-dir "$SCRATCH/$node" > /dev/null || fail "init $node"
done
port_open() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }
wait_until 15 "the SMTP server" -- port_open "$SMTP_PORT"
wait_until 15 "Alertmanager" -- port_open "$AM_PORT"
cat >> "$SCRATCH/hub-01/config" <<EOF
--receiver webhook:hook=http://127.0.0.1:$HOOK_PORT/hook
--receiver slack:chat=@$SCRATCH/slack-url
--receiver pagerduty:pd=env:PD_KEY url=http://127.0.0.1:$HOOK_PORT/pd/v2/enqueue
--receiver email:mail=smtp://127.0.0.1:$SMTP_PORT to=ops@example.com from=pilot@example.com user=pilot password=@$SCRATCH/smtp-password auth=login ca=$SCRATCH/smtp/cert.pem
--receiver exec:run=$SCRATCH/exec.sh timeout=5s
--receiver alertmanager:am=http://127.0.0.1:$AM_PORT resend=5s
--group-wait 1s
--group-interval 2s
--max-backoff 2s
--external-url http://dashboard.example:9190
EOF
HUB_PORT=$(free_port udp)
HTTP_PORT=$(free_port tcp)
start_bg "$SCRATCH/hub-01.log" "$PILOT" aggregator --state-dir "$SCRATCH/hub-01" --tunnel-listen "127.0.0.1:$HUB_PORT" --keepalive 1 \
    --no-metrics --table-interval 0 --http "127.0.0.1:$HTTP_PORT" --log-level info
wait_until 10 "hub-01 registered" -- registered hub-01
start_db() { # OVERRIDE
    start_bg "$SCRATCH/db-01-$1.log" "$PILOT" agent --state-dir "$SCRATCH/db-01" --keepalive 1 --tunnel-listen 127.0.0.1:0 --interval 1 \
        --log-level notice --metric-override "disk_pct=$1" --metric-override cpu_pct=5 --metric-override mem_pct=20
    DB_PID=$LAST_PID
    wait_until 10 "db-01 registered" -- registered db-01
    "$PILOT" handshake hub-01 "fleet" --state-dir "$SCRATCH/db-01" > /dev/null || fail "handshake db-01"
}
start_db 97

# requests PATH-PREFIX STATUS: how many requests to PATH with a body of that status.
count_requests() {
    python3 - "$SCRATCH/requests.jsonl" "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
def status(r):
    b = r["body"]
    if isinstance(b, dict):
        return b.get("status") or b.get("event_action") or ("firing" if b.get("attachments") and "RESOLVED" not in b.get("text", "") else "resolved")
    return "firing"
print(sum(1 for r in rows if r["path"].startswith(sys.argv[2]) and status(r) in sys.argv[3].split("|")))
PY
}
has_request() { [ "$(count_requests "$1" "$2")" -ge 1 ]; }
wait_until 30 "the webhook's firing notification" -- has_request /hook firing
wait_until 15 "Slack's message" -- has_request /slack/ firing
wait_until 15 "PagerDuty's trigger" -- has_request /pd/v2/enqueue trigger
mail_arrived() { test -s "$SCRATCH/mail.jsonl"; }
wait_until 20 "the email" -- mail_arrived
exec_ran() { test -s "$SCRATCH/exec.jsonl"; }
wait_until 15 "the exec receiver" -- exec_ran
am_active() {
    curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts" | python3 -c '
import json, sys
alerts = [a for a in json.load(sys.stdin) if a["labels"].get("alertname") == "disk_pct" and a["labels"].get("host") == "db-01"]
assert alerts and alerts[0]["status"]["state"] == "active", alerts'
}
wait_until 20 "the alert in Alertmanager" -- am_active
AM_SINCE=$(date +%s)

# Every body, field by field.
python3 - "$SCRATCH/requests.jsonl" "$SCRATCH/mail.jsonl" "$SCRATCH/exec.jsonl" "$PD_KEY" <<'PY' || fail "a receiver's body is wrong (see above)"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def first(prefix):
    return next(r for r in rows if r["path"].startswith(prefix))
hook = first("/hook")
b = hook["body"]
assert list(b) == ["receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "version", "groupKey", "truncatedAlerts"], list(b)
assert b["version"] == "4" and b["status"] == "firing" and b["receiver"] == "hook", b
assert b["groupLabels"] == {"alertname": "disk_pct"}, b["groupLabels"]
assert b["groupKey"] == '{}:{alertname="disk_pct"}', b["groupKey"]
assert b["externalURL"] == "http://dashboard.example:9190", b["externalURL"]
assert b["commonLabels"]["host"] == "db-01" and b["commonLabels"]["severity"] == "critical", b["commonLabels"]
a = b["alerts"][0]
assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}, a
assert a["labels"] == {"alertname": "disk_pct", "host": "db-01", "severity": "critical", "mount": "/", **({"device": a["labels"]["device"]} if "device" in a["labels"] else {})}, a["labels"]
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", a["startsAt"]) and a["endsAt"] == "0001-01-01T00:00:00Z", a
assert re.fullmatch(r"[0-9a-f]{16}", a["fingerprint"]), a["fingerprint"]
assert a["generatorURL"] == "http://dashboard.example:9190/hosts/db-01", a["generatorURL"]
summary = a["annotations"]["summary"]
assert summary == "CRITICAL db-01 disk_pct 97.0 % on / (above 95)", summary
assert a["annotations"]["value"] in ("97", "97.0") and a["annotations"]["threshold"] == "95", a["annotations"]
assert hook["headers"]["content-type"] == "application/json" and hook["headers"]["x-pilot-notification-id"], hook["headers"]

slack = first("/slack/T000/B000/slack-path-secret")["body"]
assert slack["text"] == summary, slack["text"]
att = slack["attachments"][0]
assert att["color"] == "#d63232", att
assert "db-01" in json.dumps(att["fields"]) and "disk_pct" in json.dumps(att["fields"]), att["fields"]

pd = first("/pd/v2/enqueue")["body"]
assert pd["routing_key"] == sys.argv[4] and pd["event_action"] == "trigger" and pd["dedup_key"] == a["fingerprint"], pd
p = pd["payload"]
assert p["summary"] == summary and p["severity"] == "critical" and p["source"] == "db-01" and p["component"] == "disk_pct", p
assert p["custom_details"]["threshold"] in (95, "95"), p["custom_details"]

mail = json.loads(open(sys.argv[2]).readline())
assert mail["mail_from"] == "pilot@example.com" and mail["rcpt_tos"] == ["ops@example.com"] and mail["auth_user"] == "pilot", mail
data = mail["data"]
subject = re.search(r"^Subject: (.*)$", data, re.M).group(1).strip()
assert subject == "[CRITICAL] db-01 disk_pct 97.0 % on /", subject
assert summary in data and "Notification ID:" in data, data

run = json.loads(open(sys.argv[3]).readline())
assert run["version"] == "4" and run["receiver"] == "run" and run["alerts"][0]["labels"]["host"] == "db-01", run
PY

# The router in pilot status: receivers, counts, and no secret anywhere.
"$PILOT" status --json --state-dir "$SCRATCH/hub-01" > "$SCRATCH/status.json" || fail "pilot status"
python3 - "$SCRATCH/status.json" <<'PY' || fail "pilot status lacks the router: $(cat "$SCRATCH/status.json")"
import json, sys
router = json.load(open(sys.argv[1]))["alert-router"]
byname = {r["name"]: r for r in router["receivers"]}
assert set(byname) == {"hook", "chat", "pd", "mail", "run", "am"}, byname
for name in ("hook", "chat", "pd", "mail", "run", "am"):
    assert byname[name]["delivered"] >= 1 and byname[name]["failed"] == 0, byname[name]
assert byname["chat"]["target"].startswith("@"), byname["chat"]
PY
expect_status 0 "pilot status" -- "$PILOT" status --state-dir "$SCRATCH/hub-01"
printf '%s' "$OUT" | grep -q '^alert router: 6 receivers' || fail "pilot status lacks the router: $OUT"
printf '%s' "$OUT" | grep -Eq '^  chat +slack +@.*/slack-url +queued 0  delivered [1-9]' || fail "pilot status lacks the slack receiver: $OUT"
printf '%s' "$OUT" > "$SCRATCH/status.txt"
for secret in slack-path-secret "$PD_KEY" mail-pass-9; do
    if grep -q -- "$secret" "$SCRATCH/status.json" "$SCRATCH/status.txt" "$SCRATCH/hub-01.log"; then fail "the secret '$secret' appears in pilot status or the log"; fi
done

# A test notification, and a receiver that does not exist.
expect_status 0 "pilot alert-router test hook" -- "$PILOT" alert-router test hook --state-dir "$SCRATCH/hub-01"
printf '%s' "$OUT" | grep -q '^hook: delivered (id [0-9a-f]*-[0-9]*): HTTP 200' || fail "test hook: $OUT"
expect_status 1 "pilot alert-router test nobody" -- "$PILOT" alert-router test nobody --state-dir "$SCRATCH/hub-01"
expect_one_line_error "test nobody"
# Silences: add, list, expire.
expect_status 0 "silence add" -- "$PILOT" silence add host=db-02 metric=cpu_pct --for 2h --comment "kernel update" --state-dir "$SCRATCH/hub-01"
SILENCE=$(printf '%s' "$OUT" | sed -n 's/^silence \([0-9a-f]*\) until .*/\1/p')
[ -n "$SILENCE" ] || fail "silence add: $OUT"
expect_status 0 "silence list" -- "$PILOT" silence list --state-dir "$SCRATCH/hub-01"
printf '%s' "$OUT" | grep -q "^$SILENCE .*active .*host=db-02 metric=cpu_pct .*kernel update" || fail "silence list: $OUT"
expect_status 0 "silence expire" -- "$PILOT" silence expire "$SILENCE" --state-dir "$SCRATCH/hub-01"
expect_status 0 "silence list" -- "$PILOT" silence list --state-dir "$SCRATCH/hub-01"
printf '%s' "$OUT" | grep -q "^$SILENCE .*ended" || fail "the silence did not end: $OUT"
expect_status 64 "silence add without matchers" -- "$PILOT" silence add --for 1h --state-dir "$SCRATCH/hub-01"
expect_one_line_error "silence add without matchers"

# Alertmanager keeps the alert past its resolve timeout (10 s): the router re-posts it.
elapsed=$(( $(date +%s) - AM_SINCE ))
[ "$elapsed" -lt 30 ] && sleep $((30 - elapsed))
am_active || fail "Alertmanager resolved an alert that still fires (after 30 s with resolve_timeout 10s)"

# The disk back to normal: the resolve reaches the webhook, PagerDuty and Alertmanager.
kill "$DB_PID"
wait "$DB_PID" 2>/dev/null || true
start_db 40
wait_until 40 "the webhook's resolve" -- has_request /hook resolved
wait_until 15 "PagerDuty's resolve" -- has_request /pd/v2/enqueue resolve
am_resolved() { ! am_active; }
wait_until 20 "Alertmanager's alert resolved" -- am_resolved
python3 - "$SCRATCH/requests.jsonl" <<'PY' || fail "a resolve body is wrong"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hook = [r["body"] for r in rows if r["path"] == "/hook" and r["body"]["status"] == "resolved"][0]
a = hook["alerts"][0]
assert a["status"] == "resolved" and a["endsAt"] != "0001-01-01T00:00:00Z" and a["annotations"]["summary"].startswith("RESOLVED db-01 disk_pct"), a
pd = [r["body"] for r in rows if r["path"].startswith("/pd/") and r["body"]["event_action"] == "resolve"][0]
assert set(pd) == {"routing_key", "event_action", "dedup_key"} and pd["dedup_key"] == a["fingerprint"], pd
ids = [r["headers"]["x-pilot-notification-id"] for r in rows if r["path"] == "/hook"]
assert len(ids) == len(set(ids)), ids
PY

# Bad configuration is refused at start, naming the place.
"$PILOT" init --hostname bad-01 --registry "$REGISTRY" --hub hub-01 --state-dir "$SCRATCH/bad-01" > /dev/null || fail "init bad-01"
cp "$SCRATCH/bad-01/config" "$SCRATCH/bad-01/config.base"
refused() { # CONFIG-LINE EXPECTED-TEXT
    cp "$SCRATCH/bad-01/config.base" "$SCRATCH/bad-01/config"
    printf '%s\n' "$1" >> "$SCRATCH/bad-01/config"
    line=$(wc -l < "$SCRATCH/bad-01/config" | tr -d ' ')
    expect_status 64 "alert-router with '$1'" -- "$PILOT" alert-router --state-dir "$SCRATCH/bad-01"
    expect_one_line_error "alert-router with '$1'"
    case "$ERR" in *"$SCRATCH/bad-01/config:$line: "*"$2"*) ;; *) fail "'$1' refused without naming its line or '$2': $ERR" ;; esac
}
refused "--receiver sms:ops=123" "unknown receiver kind 'sms'"
refused "--receiver webhook:hook=http//nowhere" "not an http:// or https:// URL"
refused "--receiver slack:chat=@$SCRATCH/missing-file" "cannot read it"
printf -- '--receiver webhook:hook=http://127.0.0.1:9/\n' >> "$SCRATCH/bad-01/config.base"
refused "--route severity=critical -> pager" "no receiver is named 'pager'"
echo "ok: webhook v4, Slack, PagerDuty, email over STARTTLS + AUTH LOGIN, exec and Alertmanager each got the alert and its resolve; Alertmanager kept it active past its resolve timeout; test, silences, status without secrets; bad config refused by FILE:LINE"
