#!/bin/sh
# `make image` produced an OCI image: unpack it with umoci and run the
# binary from the unpacked root in a chroot.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_root
require_command umoci umoci
IMAGE=${IMAGE:-$REPO/pilot-image.tar}
[ -f "$IMAGE" ] || fail "no image at $IMAGE (run make image)"

mkdir "$SCRATCH/oci"
tar -C "$SCRATCH/oci" -xf "$IMAGE" || fail "$IMAGE is not a tarball"
[ -f "$SCRATCH/oci/oci-layout" ] || fail "$IMAGE is not an OCI layout"
umoci unpack --image "$SCRATCH/oci:latest" "$SCRATCH/bundle" >/dev/null || fail "umoci could not unpack the image"
rootfs="$SCRATCH/bundle/rootfs"
[ -x "$rootfs/pilot" ] || fail "the image has no /pilot"
[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ] || fail "the image has no CA certificates"
cmp -s "$PILOT" "$rootfs/pilot" || fail "the image holds another binary than $PILOT"
grep -q '"/pilot"' "$SCRATCH/bundle/config.json" || fail "the image's entrypoint is not /pilot"

mount_proc "$rootfs"
expect_status 0 "pilot version from the image" -- chroot "$rootfs" /pilot version
case "$OUT" in "pilot "*) ;; *) fail "unexpected output: $OUT" ;; esac
expect_status 0 "pilot init from the image" -- chroot "$rootfs" /pilot init --hostname image-01
[ -f "$rootfs/var/lib/pilot/identity.key" ] || fail "init in the image did not use PILOT_STATE_DIR's default /var/lib/pilot"
echo "ok: OCI image unpacks and runs"
