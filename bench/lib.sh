# shellcheck shell=sh
# Shared by the benchmark scripts: a scratch directory removed at exit, the
# processes started (by PID) stopped at exit, and bounded polling.
# Set BENCH_NAME before sourcing.
S=$(mktemp -d "${TMPDIR:-/tmp}/pilot-bench-$BENCH_NAME.XXXXXX")
PIDS=""
cleanup() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$S"
}
trap cleanup EXIT INT TERM

wait_for() { # SECONDS CMD...: polls CMD every 0.1 s, bounded
    tries=$(($1 * 10)); shift
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "bench/$BENCH_NAME.sh: timed out waiting for: $*" >&2; exit 1; }
        sleep 0.1
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_fleet NODE...: a registry on loopback, and NODE... initialised with
# hub-01 as their hub and a shared join token (so trust is granted at once).
start_fleet() {
    "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$S/registry" --log-level warning 2> "$S/registry.log" &
    PIDS="$PIDS $!"
    wait_for 10 test -s "$S/registry/registry.addr"
    REGISTRY=$(cat "$S/registry/registry.addr")
    for node in "$@"; do
        "$PILOT" init --hostname "$node" --registry "$REGISTRY" --hub hub-01 --join-token bench-secret-1 --state-dir "$S/$node" > /dev/null
    done
}

registered() { "$PILOT" status --json --state-dir "$S/$1" | grep -q '"registered":true'; }

# ensure_packages PKG...: succeeds when every PKG is installed (dpkg -s),
# installing the missing ones first when run as root (apt-get install -y,
# nothing else); says what is missing and fails otherwise.
ensure_packages() {
    missing=""
    for p in "$@"; do dpkg -s "$p" > /dev/null 2>&1 || missing="$missing $p"; done
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "bench/$BENCH_NAME.sh: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
        return 1
    fi
    echo "bench/$BENCH_NAME.sh: installing:$missing" >&2
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing > "$S/apt.log" 2>&1 || {
        echo "bench/$BENCH_NAME.sh: apt-get install$missing failed: $(tail -1 "$S/apt.log")" >&2
        return 1
    }
}
