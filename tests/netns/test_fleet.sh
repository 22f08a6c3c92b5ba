#!/bin/sh
# The monitoring guide's scenario, the way a user deploys it: on an
# "internet" segment the registry and the beacon (host inet) and the hub
# (host hub: pilot aggregator --with store and a webhook receiver); three
# sites behind NAT routers, a and b endpoint-independent, s symmetric
# (MASQUERADE --random-fully), two hosts each running pilot agent, joined
# with the fleet's join token, tagged by site, with no hub configured (they
# find the one the registry lists). Checked, in order:
#   1. every host online in pilot peers and /api/hosts with its tags, its
#      metrics in the store; a <-> b direct (relay counters unchanged),
#      a <-> s through the relay;
#   2. a real disk of one host (an 8 MB ext4 loop image mounted only in
#      its agent's mount namespace) filled past 95 %: a critical alert at
#      the webhook receiver within two intervals plus the group wait; the
#      file removed: the resolve arrives;
#   3. a host powered off (kill -9, link down): offline in pilot peers
#      within the offline window, host_down at the receiver; powered on:
#      online again with the same address, host_down resolved;
#   4. the hub killed -9 while the fleet publishes and restarted: the store
#      holds every sample the agents produced meanwhile, none twice;
#   5. the beacon restarted: relayed traffic to the symmetric site resumes
#      within a minute, and that site's metrics (their tunnel to the hub
#      runs through the relay too) reach the hub again, none missing;
#   6. 10 % loss both ways on site b's uplink for a minute: no sample lost;
#   7. a capture of the internet segment holds no plaintext of a marker
#      planted in one check's output.
# Exit 0 pass, 77 skip (never under CI=true), anything else fail.
set -eu
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# A failure says what was wrong, then the last lines of every log of the run.
fail() {
    for log in "${NETNS_STATE:-/nonexistent}"/*.log; do
        [ -s "$log" ] && printf '== %s\n%s\n' "$(basename "$log")" "$(tail -n 5 "$log")" >&2
    done
    netns_fail "$@"
}
ok() { printf 'ok %s\n' "$*"; }
REPO=${REPO:-$(cd "$NETNS_DIR/../.." && pwd)}
PILOT=${PILOT:-$REPO/pilot}
[ -x "$PILOT" ] || fail "no pilot binary at $PILOT (make build)"
netns_require tcpdump python3 curl
STARTED=$(date +%s)

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
elapsed() { echo $(($(date +%s) - $1)); }

INTERVAL=2      # the agents' collection interval, s
OFFLINE=6       # the registry's offline window, s
HOSTS="a a2 b b2 s s2"
netns_setup
netns_add_public hub
netns_add_nat_lan a eim
netns_add_lan_host a a2
netns_add_nat_lan b eim
netns_add_lan_host b b2
netns_add_nat_lan s symmetric
netns_add_lan_host s s2
T=$NETNS_STATE
INET=$(netns_addr inet)
HUB=$(netns_addr hub)
printf 'fleet-token-%s\n' "$NETNS_ID" > "$T/token"
chmod 600 "$T/token"
MARKER="PILOT-MARKER-$NETNS_ID-metric"

netns_exec inet tcpdump -i br0 -w "$T/internet.pcap" -U udp > "$T/tcpdump.log" 2>&1 &
netns_exec inet "$PILOT" registry --listen "$INET:9000" --http off --state-dir "$T/registry" --offline-after "$OFFLINE" \
    --join-token "@$T/token" --log-level warning 2> "$T/registry.log" &
netns_wait_file 10 "$T/registry/registry.addr" || fail "the registry did not start: $(cat "$T/registry.log")"
start_beacon() {
    ip netns exec "$(netns_ns inet)" "$PILOT" beacon --listen "$INET:9001" --registry "$INET:9000" --state-dir "$T/beacon" --log-level warning \
        > /dev/null 2>> "$T/beacon.log" &
    BEACON_PID=$!
}
start_beacon

# The hub: aggregator, store and alert router in one process, a webhook receiver beside it.
netns_exec hub python3 "$REPO/tests/system/recorder.py" --port 9300 --out "$T/hook.jsonl" --max-seconds 600 > /dev/null 2>&1 &
"$PILOT" init --hostname hub-01 --registry "$INET:9000" --beacon "$INET:9001" --join-token "@$T/token" --state-dir "$T/hub" > /dev/null
start_hub() {
    # ip netns exec itself (not the netns_exec function, which would run in a
    # subshell): $! is then the hub's own pid, for the kill -9 below.
    ip netns exec "$(netns_ns hub)" "$PILOT" aggregator --state-dir "$T/hub" --with store,alert-router --store-http off --tunnel-listen "$HUB:7000" \
        --keepalive 1 --no-metrics --table-interval 0 --http 127.0.0.1:9190 --host-down-after 8s \
        --receiver webhook:hook=http://127.0.0.1:9300/hook --group-wait 1s --group-interval 2s --log-level warning 2>> "$T/hub.log" &
    HUB_PID=$!
}
start_hub
registered() { "$PILOT" status --json --state-dir "$T/$1" 2>/dev/null | grep -q '"registered":true'; }
wait_for 15 "the hub registered" registered hub

# Six hosts, two per site, tagged by site; host a's check carries the marker.
start_agent() { # HOST
    host=$1
    shift
    if [ "$host" = a ]; then set -- --check "command:marker=/bin/echo $MARKER"; fi
    if [ "$host" = a2 ]; then
        # Its own mount namespace, where the loop image is its data disk.
        # shellcheck disable=SC2016 # expanded by the inner shell
        ip netns exec "$(netns_ns a2)" unshare -m sh -c 'mount -o loop "$1" "$2" && shift 2 && exec "$@"' sh "$T/disk-a2.img" "$T/data-a2" \
            "$PILOT" agent --state-dir "$T/a2" --interval "$INTERVAL" --keepalive 1 --log-level warning 2>> "$T/a2.log" &
        PID_a2=$!
        return
    fi
    ip netns exec "$(netns_ns "$host")" "$PILOT" agent --state-dir "$T/$host" --interval "$INTERVAL" --keepalive 1 --log-level warning "$@" 2>> "$T/$host.log" &
    eval "PID_$host=\$!"
}
truncate -s 8M "$T/disk-a2.img"
mkfs.ext4 -q -F "$T/disk-a2.img" || fail "mkfs.ext4 of the loop image"
mkdir -p "$T/data-a2"
for host in $HOSTS; do
    site=$(printf '%s' "$host" | cut -c1)
    "$PILOT" init --hostname "host-$host" --registry "$INET:9000" --beacon "$INET:9001" --join-token "@$T/token" --tag "site-$site" \
        --state-dir "$T/$host" > /dev/null
    start_agent "$host"
done
for host in $HOSTS; do wait_for 20 "host-$host registered" registered "$host"; done
for host in $HOSTS; do
    "$PILOT" handshake hub-01 "metrics of host-$host" --state-dir "$T/$host" > /dev/null || fail "host-$host's handshake with the hub"
done

# 1. Every host online, with its tags, in the registry and at the hub; metrics in the store.
peers_json() { "$PILOT" peers --json --state-dir "$T/a"; }
all_online() {
    peers_json | python3 -c "
import json, sys
nodes = {n['hostname']: n for n in json.load(sys.stdin)}
for h in '$HOSTS'.split():
    n = nodes.get('host-' + h)
    assert n and n['presence'] == 'online' and n['tags'] == ['site-' + h[0]], (h, n)"
}
wait_for 30 "every host online in pilot peers with its site tag" all_online
api_hosts() { netns_exec hub curl -sf http://127.0.0.1:9190/api/hosts; }
all_up() {
    api_hosts | python3 -c "
import json, sys
hosts = {h['host']: h for h in json.load(sys.stdin)}
for h in '$HOSTS'.split():
    e = hosts.get('host-' + h)
    assert e and e['up'] and 'site-' + h[0] in e['tags'], (h, e)"
}
wait_for 40 "every host up in /api/hosts with its site tag" all_up
stored() { # HOST: cpu_pct points of HOST in the hub's store
    "$PILOT" query cpu_pct --host "host-$1" --since 10m --json --state-dir "$T/hub" | python3 -c "
import json, sys
print(sum(len(s['points']) for s in json.load(sys.stdin)))"
}
in_store() { for host in $HOSTS; do [ "$(stored "$host")" -ge 2 ] || return 1; done; }
wait_for 30 "cpu_pct of every host in the hub's store" in_store
relayed() { "$PILOT" beacon status --json --state-dir "$T/beacon" | sed -n 's/.*"relayed_datagrams":\([0-9]*\).*/\1/p'; }
before=$(relayed)
out=$("$PILOT" ping host-b --count 4 --interval 0.5 --state-dir "$T/a" || true)
printf '%s\n' "$out" | grep -Eq "^4 sent, [34] received" || fail "ping host-a -> host-b: $out"
printf '%s\n' "$out" | grep -q "via $(netns_addr b-r):" || fail "host-a -> host-b did not go direct to b's NAT: $out"
[ "$(relayed)" = "$before" ] || fail "the beacon relayed $(($(relayed) - before)) datagrams between two EIM sites"
out=$("$PILOT" ping host-s --count 5 --interval 0.5 --state-dir "$T/a" || true)
printf '%s\n' "$out" | grep -Eq "^5 sent, [3-5] received" || fail "ping host-a -> host-s: $out"
printf '%s\n' "$out" | grep -q "via relay" || fail "host-a -> host-s did not use the relay: $out"
[ "$(relayed)" -gt "$before" ] || fail "the relay counters stayed put for the symmetric site"
ok "1 - 6 hosts in 3 sites online with their tags in pilot peers and /api/hosts, metrics in the store; a <-> b direct, a <-> s relayed ($(($(relayed) - before)) datagrams) [$(elapsed "$STARTED") s]"

hook_has() { # METRIC HOST STATUS [LABEL=VALUE...]: the receiver got that notification
    python3 - "$T/hook.jsonl" "$@" <<'PY'
import json, sys
path, metric, host, status = sys.argv[1:5]
wanted = dict(item.split("=", 1) for item in sys.argv[5:])
for line in open(path, encoding="utf-8"):
    body = json.loads(line).get("body") or {}
    for alert in body.get("alerts", []):
        labels = alert.get("labels", {})
        if labels.get("alertname") == metric and labels.get("host") == host and alert.get("status") == status \
                and all(labels.get(k) == v for k, v in wanted.items()):
            sys.exit(0)
sys.exit(1)
PY
}

# 2. Fill host-a2's data disk (its own mount namespace) past 95 %, then free it.
mounted() { nsenter -t "$PID_a2" -m sh -c "grep -q ' $T/data-a2 ' /proc/self/mounts"; }
wait_for 10 "host-a2's data disk mounted in its namespace" mounted
if grep -q " $T/data-a2 " /proc/self/mounts; then fail "the loop image is mounted outside host-a2's namespace"; fi
nsenter -t "$PID_a2" -m sh -c "dd if=/dev/zero of='$T/data-a2/fill' bs=64k 2>/dev/null; sync" || true
filled=$(date +%s)
wait_for 20 "a critical disk_pct alert of host-a2's data disk at the receiver" hook_has disk_pct host-a2 firing severity=critical "mount=$T/data-a2"
fired_after=$(elapsed "$filled")
[ "$fired_after" -le $((INTERVAL * 2 + 1 + 1)) ] || fail "the disk alert took $fired_after s, more than two intervals plus the group wait"
nsenter -t "$PID_a2" -m rm -f "$T/data-a2/fill"
freed=$(date +%s)
wait_for 20 "the disk_pct alert of host-a2 resolved at the receiver" hook_has disk_pct host-a2 resolved "mount=$T/data-a2"
ok "2 - host-a2's disk filled: critical alert at the receiver after $fired_after s (aim: two intervals plus the group wait, $((INTERVAL * 2 + 1)) s, +1 s of rounding); freed: resolved after $(elapsed "$freed") s"

# 3. Power off host b2: kill -9 and its link down; then on again.
address_of() { peers_json | python3 -c "import json,sys; print([n['address'] for n in json.load(sys.stdin) if n['hostname'] == '$1'][0])"; }
presence_of() { peers_json | python3 -c "import json,sys; print([n['presence'] for n in json.load(sys.stdin) if n['hostname'] == '$1'][0])"; }
address=$(address_of host-b2)
eval "kill -9 \$PID_b2"
netns_exec b2 ip link set eth0 down
off=$(date +%s)
is_offline() { [ "$(presence_of host-b2)" = offline ]; }
wait_for $((OFFLINE + 5)) "host-b2 offline in pilot peers" is_offline
offline_after=$(elapsed "$off")
wait_for 30 "host_down of host-b2 at the webhook receiver" hook_has host_down host-b2 firing
down_after=$(elapsed "$off")
netns_exec b2 ip link set eth0 up
netns_exec b2 ip route add default via 10.2.0.1 2>/dev/null || true
on=$(date +%s)
start_agent b2
is_online() { [ "$(presence_of host-b2)" = online ]; }
wait_for 30 "host-b2 online again" is_online
[ "$(address_of host-b2)" = "$address" ] || fail "host-b2 came back as $(address_of host-b2), not $address"
wait_for 30 "host_down of host-b2 resolved at the receiver" hook_has host_down host-b2 resolved
ok "3 - host-b2 off: offline after $offline_after s (window $OFFLINE s), host_down at the receiver after $down_after s; on: back as $address, resolved after $(elapsed "$on") s"

complete_since() { # WHAT FROM EVENT HOST...: each HOST's cpu_pct series at the hub holds one point per cycle from FROM on, none twice, past EVENT
    what=$1; start=$2; event=$3; shift 3
    for host in "$@"; do
        "$PILOT" query cpu_pct --host "host-$host" --since 10m --json --state-dir "$T/hub" > "$T/series-$host.json" 2> "$T/query.err" ||
            fail "pilot query at the hub: $(cat "$T/query.err")"
        python3 - "$T/series-$host.json" "$host" "$INTERVAL" "$event" "$start" "$what" <<'PY' || fail "host-$host's samples $what"
import json, sys
path, host, interval, event, start, what = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
series = json.load(open(path))
times = sorted(p[0] / 1000 for s in series for p in s["points"])
assert len(times) == len(set(times)), f"host-{host}: {len(times) - len(set(times))} samples stored twice"
spanning = [t for t in times if start <= t]
gaps = [b - a for a, b in zip(spanning, spanning[1:])]
assert spanning and spanning[0] < event < spanning[-1], f"host-{host}: no samples on both sides of {what}"
assert max(gaps) < 1.6 * interval, f"host-{host}: a gap of {max(gaps):.1f} s {what} (interval {interval} s): a sample is missing"
print(len(spanning))
PY
    done
}

# 4. The hub killed -9 while the fleet publishes, and restarted: every sample there, none twice.
wait_for 20 "host-b2 delivering again" hook_has host_down host-b2 resolved
from=$(date +%s)
sleep 4
kill -9 "$HUB_PID"
killed=$(date +%s)
sleep 8
start_hub
wait_for 20 "the hub registered again" registered hub
sleep $((INTERVAL * 3))
drained() { # every host's spool for hub-01 empty
    for host in $HOSTS; do
        "$PILOT" status --json --state-dir "$T/$host" | python3 -c "
import json, sys
s = [x for x in json.load(sys.stdin)['events']['spools'] if x['hub'] == 'hub-01']
sys.exit(0 if s and s[0]['spooled'] == 0 else 1)" || return 1
    done
}
wait_for 60 "every host's spool drained into the restarted hub" drained
recovered=$(elapsed "$killed")
# shellcheck disable=SC2086 # $HOSTS is a list of hosts
samples=$(complete_since "across the hub's kill" "$from" "$killed" $HOSTS | awk '{ n += $1 } END { print n }')
ok "4 - hub killed -9 and restarted: every host back and drained $recovered s after the kill; $samples cpu_pct samples since, each stored once, none missing"

# 5. The beacon restarted: relayed traffic to site s resumes, s's metrics never stop.
from=$(date +%s)
kill "$BEACON_PID"
wait "$BEACON_PID" 2>/dev/null || true
restarted=$(date +%s)
rm -f "$T/beacon/beacon.addr"
start_beacon
netns_wait_file 10 "$T/beacon/beacon.addr" || fail "the beacon did not restart: $(tail -n 3 "$T/beacon.log")"
relayed_ping() { "$PILOT" ping host-s --count 2 --interval 0.5 --state-dir "$T/a" | grep -Eq "^2 sent, [12] received"; }
wait_for 60 "host-a -> host-s through the restarted beacon's relay" relayed_ping
resumed=$(elapsed "$restarted")
out=$("$PILOT" ping host-s --count 3 --interval 0.3 --state-dir "$T/a" || true)
printf '%s\n' "$out" | grep -q "via relay" || fail "host-a -> host-s after the beacon's restart: $out"
latest_after() { # HOST TIME: HOST has a cpu_pct sample at the hub taken after TIME
    "$PILOT" query cpu_pct --host "host-$1" --since 5m --json --state-dir "$T/hub" |
        python3 -c "import json,sys; sys.exit(0 if any(p[0] / 1000 > $2 for s in json.load(sys.stdin) for p in s['points']) else 1)"
}
wait_for 60 "host-s's metrics after the beacon's restart" latest_after s "$((restarted + INTERVAL))"
wait_for 60 "host-s2's metrics after the beacon's restart" latest_after s2 "$((restarted + INTERVAL))"
metrics_after=$(elapsed "$restarted")
complete_since "across the beacon's restart" "$((restarted - 10))" "$restarted" s s2 > /dev/null
ok "5 - beacon restarted: relayed traffic to host-s again after $resumed s; site s's metrics at the hub $metrics_after s after, complete across it"

# 6. 10 % loss both ways on site b's uplink for a minute: no sample lost.
from=$(date +%s)
netns_loss b-r 10 both
sleep 60
netns_loss b-r 0 both
lossy=$(date +%s)
sleep $((INTERVAL * 3))
wait_for 30 "every spool drained after the loss" drained
samples=$(complete_since "through 10 % loss" "$from" "$((lossy - 30))" b b2 | awk '{ n += $1 } END { print n }')
ok "6 - 10 % loss both ways on site b's uplink for 60 s: $samples cpu_pct samples of host-b and host-b2 since, none lost, none twice"

# 7. No plaintext of the check's marker on the internet segment.
marker_reached() { api_hosts | grep -q "$MARKER"; }
wait_for 20 "the marker check's output at the hub" marker_reached
sleep 1
size=$(stat -c %s "$T/internet.pcap" 2>/dev/null || echo 0)
[ "$size" -gt 10000 ] || fail "the capture of the internet segment is empty ($size bytes): $(cat "$T/tcpdump.log")"
if grep -a -q "$MARKER" "$T/internet.pcap"; then fail "the marker appeared in plaintext on the internet segment"; fi
ok "7 - capture of the internet segment: $size bytes, the marker reached the hub, never in plaintext"
echo "PASS in $(elapsed "$STARTED") s"
