#!/bin/sh
# install.sh: from a local file and from a URL, checksum, role links, idempotence,
# a systemd unit that systemd-analyze accepts, and an uninstall that leaves nothing.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command shellcheck shellcheck
require_command systemd-analyze systemd
require_command curl curl

(cd "$REPO" && shellcheck -x install.sh packaging/build-image.sh bench/events.sh bench/agent.sh bench/aggregator.sh bench/router.sh bench/lib.sh tests/system/test_events_*.sh tests/system/test_agent_*.sh tests/system/test_aggregator_*.sh tests/system/test_up.sh tests/system/test_store_*.sh tests/system/test_shutdown.sh tests/system/test_alert_router_*.sh tests/system/test_up_alerts.sh tests/system/test_dashboard.sh tests/system/test_join_token.sh tests/system/test_http_access.sh tests/system/test_tunnel_attacks.sh tests/system/test_beacon_abuse.sh bench/dashboard.sh) || fail "shellcheck found problems"

prefix="$SCRATCH/prefix"
units="$SCRATCH/units"
expect_status 0 "install --from" -- "$REPO/install.sh" --from "$PILOT" --prefix "$prefix" --systemd agent --unit-dir "$units"
for role in agent aggregator store alert-router registry beacon; do
    [ -L "$prefix/bin/pilot-$role" ] || fail "no link pilot-$role"
done
cmp -s "$PILOT" "$prefix/bin/pilot" || fail "installed binary differs from the source"

expect_status 0 "pilot-registry --help through the link" -- "$prefix/bin/pilot-registry" --help
printf '%s\n' "$OUT" | grep -q "^USAGE: pilot registry " || fail "pilot-registry --help showed another help: $(printf '%s' "$OUT" | head -n 3)"
printf '%s\n' "$OUT" | grep -q -- "--listen <host:port>" || fail "registry help lacks the registry's --listen option"
printf '%s\n' "$OUT" | grep -q "pilot-registry, a link to pilot" || fail "registry help does not name its link"
expect_status 2 "pilotctl through its link, with an unknown verb" -- "$prefix/bin/pilotctl" frobnicate
case "$ERR" in "pilotctl: unknown command 'frobnicate'"*) ;; *) fail "pilotctl through its link: $ERR" ;; esac
expect_status 64 "pilot-alert-router through the link, with no receiver" -- "$prefix/bin/pilot-alert-router"
case "$ERR" in "pilot alert-router: no receiver"*) ;; *) fail "pilot-alert-router through the link: $ERR" ;; esac

unit="$units/pilot-agent.service"
[ -f "$unit" ] || fail "--systemd agent wrote no unit"
for directive in NoNewPrivileges=yes ProtectSystem=strict StateDirectory=pilot KillSignal=SIGTERM TimeoutStopSec=15s; do
    grep -qx "$directive" "$unit" || fail "unit lacks $directive"
done
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify refused the unit: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warned: $verify"

# Idempotent: a second run changes nothing but replaces the binary.
before=$(find "$prefix" "$units" | sort)
expect_status 0 "second install" -- "$REPO/install.sh" --from "$PILOT" --prefix "$prefix" --systemd agent --unit-dir "$units"
after=$(find "$prefix" "$units" | sort)
[ "$before" = "$after" ] || fail "a second install changed the file set"
[ "$(grep -c . "$prefix/share/pilot/install-manifest")" = "$(sort -u "$prefix/share/pilot/install-manifest" | grep -c .)" ] \
    || fail "the manifest has duplicate lines after a second install"

# Uninstall removes exactly what was installed: the prefix and unit dir were new, so nothing is left.
expect_status 0 "uninstall" -- "$REPO/install.sh" --prefix "$prefix" --unit-dir "$units" --uninstall
[ ! -e "$prefix" ] || fail "uninstall left: $(find "$prefix")"
[ ! -e "$units" ] || fail "uninstall left: $(find "$units")"

# ... and nothing more: files that were there before stay.
mkdir -p "$SCRATCH/shared/bin"
echo keep > "$SCRATCH/shared/bin/other-tool"
expect_status 0 "install into a shared prefix" -- "$REPO/install.sh" --from "$PILOT" --prefix "$SCRATCH/shared"
expect_status 0 "uninstall from a shared prefix" -- "$REPO/install.sh" --prefix "$SCRATCH/shared" --uninstall
[ "$(find "$SCRATCH/shared" | sort | tr '\n' ' ')" = "$SCRATCH/shared $SCRATCH/shared/bin $SCRATCH/shared/bin/other-tool " ] \
    || fail "uninstall from a shared prefix removed or left the wrong files: $(find "$SCRATCH/shared")"

# The download path (curl | sh) with a published checksum, over a file:// URL.
site="$SCRATCH/site"
mkdir -p "$site"
cp "$PILOT" "$site/pilot-linux-$(uname -m)"
sum=$(sha256sum "$PILOT" | cut -d' ' -f1)
echo "$sum  pilot-linux-$(uname -m)" > "$site/pilot-linux-$(uname -m).sha256"
expect_status 0 "curl | sh install" -- sh -c "PILOT_DOWNLOAD_URL='file://$site' PREFIX='$SCRATCH/web' sh < '$REPO/install.sh'"
printf '%s\n' "$OUT" | grep -q "sha256 verified: $sum" || fail "download path did not verify the checksum: $OUT"
[ -x "$SCRATCH/web/bin/pilot" ] || fail "download path installed no binary"

# A wrong checksum installs nothing.
expect_status 1 "wrong sha256" -- "$REPO/install.sh" --from "$PILOT" --prefix "$SCRATCH/bad" --sha256 0000
case "$ERR" in *"checksum mismatch"*) ;; *) fail "wrong sha256 message: $ERR" ;; esac
[ ! -e "$SCRATCH/bad" ] || fail "a checksum mismatch still installed files"
expect_status 1 "unknown option" -- "$REPO/install.sh" --frobnicate
expect_status 1 "unknown systemd role" -- "$REPO/install.sh" --from "$PILOT" --prefix "$SCRATCH/x" --systemd nope --unit-dir "$SCRATCH/u"
case "$ERR" in *"unknown role 'nope'"*) ;; *) fail "unknown role message: $ERR" ;; esac
echo "ok: install, links, unit, idempotence, download with checksum, uninstall"
