# shellcheck shell=sh disable=SC2034
# Shared by the system tests: each test is a POSIX sh script that exits 0
# when it passes, 77 when it must skip (never under CI=true), anything else
# when it fails. Every failure prints one line saying what was wrong.
set -eu

PILOT=${PILOT:-$(pwd)/pilot}
REPO=${REPO:-$(pwd)}
TEST_NAME=$(basename "$0" .sh)

fail() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }

skip_or_fail() { # REASON
    if [ "${CI:-}" = true ]; then fail "cannot run under CI=true: $*"; fi
    printf '%s: SKIP: %s\n' "$TEST_NAME" "$*" >&2
    exit 77
}

require_root() {
    [ "$(id -u)" = 0 ] || skip_or_fail "needs root (chroot, mount)"
}

require_command() { # CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 || skip_or_fail "needs $1 (apt-get install $2)"
}

[ -x "$PILOT" ] || fail "no binary at $PILOT (run make build first)"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/pilot-$TEST_NAME.XXXXXX")
MOUNTS=""
PIDS=""
cleanup() {
    # Only processes this test started, by PID (stopped ones are woken to die).
    for pid in $PIDS; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    for m in $MOUNTS; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$SCRATCH"
}
trap cleanup EXIT INT TERM

# start_bg LOG CMD...: runs CMD in the background with stderr to LOG; its PID is $LAST_PID.
start_bg() {
    log=$1; shift
    "$@" > /dev/null 2> "$log" &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

# wait_until SECONDS DESCRIPTION -- CMD...: polls CMD every 0.2 s, bounded.
wait_until() {
    limit=$1; what=$2; shift 3
    tries=$((limit * 5))
    while [ "$tries" -gt 0 ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
        tries=$((tries - 1))
    done
    fail "timed out after ${limit}s waiting for: $what"
}

# free_port tcp|udp: a port nothing on 127.0.0.1 uses now.
free_port() {
    python3 -c 'import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

mount_proc() { # ROOT
    mkdir -p "$1/proc"
    mount -t proc proc "$1/proc" || fail "cannot mount /proc in $1"
    MOUNTS="$1/proc $MOUNTS"
}

# expect_status WANT DESCRIPTION -- CMD...: runs CMD, captures stdout/stderr
# into $OUT/$ERR, fails unless it exits WANT.
expect_status() {
    want=$1; what=$2; shift 3
    set +e
    "$@" > "$SCRATCH/out" 2> "$SCRATCH/err"
    got=$?
    set -e
    OUT=$(cat "$SCRATCH/out"); ERR=$(cat "$SCRATCH/err")
    [ "$got" = "$want" ] || fail "$what: exit $got, wanted $want (stderr: $ERR)"
}

# A clean error is exactly one line, names no Swift internals, has no backtrace.
expect_one_line_error() { # DESCRIPTION
    lines=$(printf '%s\n' "$ERR" | grep -c . || true)
    [ "$lines" = 1 ] || fail "$1: expected one line on stderr, got $lines: $ERR"
    case "$ERR" in
        *"Fatal error"*|*"Stack dump"*|*"Backtrace"*|*"Current stack trace"*|*"Swift runtime"*) fail "$1: crashed: $ERR" ;;
    esac
}
