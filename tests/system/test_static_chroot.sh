#!/bin/sh
# The shipped binary is static, under 36 MB, and runs `version` and `init`
# inside an empty chroot holding only itself, /proc and /etc/hosts.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_root
require_command file file

file "$PILOT" | grep -q "statically linked" || fail "file(1) does not say statically linked: $(file "$PILOT")"
size=$(stat -c %s "$PILOT")
limit=$((36 * 1024 * 1024))
[ "$size" -lt "$limit" ] || fail "binary is $size bytes, over the 36 MB budget"
printf 'binary: %s bytes (%s MB), statically linked\n' "$size" "$((size / 1024 / 1024))"

root="$SCRATCH/root"
mkdir -p "$root/etc"
cp "$PILOT" "$root/pilot"
cp /etc/hosts "$root/etc/hosts"
mount_proc "$root"
[ "$(find "$root" -mindepth 1 -maxdepth 1 | wc -l)" = 3 ] || fail "chroot is not empty: $(ls "$root")"

expect_status 0 "pilot version in chroot" -- chroot "$root" /pilot version
case "$OUT" in "pilot "*"libsodium:"*"sqlite:"*) ;; *) fail "unexpected version output: $OUT" ;; esac

expect_status 0 "pilot init in chroot" -- chroot "$root" /pilot init --hostname chroot-01 --state-dir /state
key=$(printf '%s\n' "$OUT" | sed -n 's/^public key: //p')
[ -n "$key" ] || fail "init printed no public key: $OUT"
[ "$(stat -c %a "$root/state/identity.key")" = 600 ] || fail "identity file mode is $(stat -c %a "$root/state/identity.key")"
[ "$(stat -c %a "$root/state")" = 700 ] || fail "state dir mode is $(stat -c %a "$root/state")"
grep -qx -- "--hostname chroot-01" "$root/state/config" || fail "config lacks the hostname: $(cat "$root/state/config")"
grep -q "ed25519-public $key" "$root/state/identity.key" || fail "printed key is not the stored identity"
# The HTTPS certificate: BoringSSL's P-256 key generation works in the static binary too.
[ "$(stat -c %a "$root/state/tls.key")" = 600 ] || fail "tls.key mode is $(stat -c %a "$root/state/tls.key" 2>&1)"
printf '%s\n' "$OUT" | grep -Eq '^  tls sha256:  ([0-9A-F]{2}:){31}[0-9A-F]{2}$' || fail "init printed no certificate fingerprint: $OUT"

# Running a role through a link inside the chroot works too.
ln -s pilot "$root/pilot-beacon"
expect_status 0 "pilot-beacon --help in chroot" -- chroot "$root" /pilot-beacon --help
printf '%s\n' "$OUT" | grep -q "^USAGE: pilot beacon " || fail "pilot-beacon --help showed: $OUT"
echo "ok: static binary runs version, init and a role link in an empty chroot"
