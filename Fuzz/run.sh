#!/bin/sh
# Builds the libFuzzer targets of Fuzz/ and runs each for a bounded time.
#
#   sh Fuzz/run.sh [SECONDS_PER_TARGET]   default 60
#   sh Fuzz/run.sh --write-seeds          regenerate Fuzz/corpus/* from the targets
#
#   FUZZ_TARGETS="json values"   run only these targets
#
# Prints one line per target (executions, executions/s, coverage, result)
# and exits non-zero if any target crashed, trapped, hung or ran out of
# memory; the input that did it is kept in Fuzz/crashes/TARGET-*.
# Reproduce one: Fuzz/.build-fuzz/release/fuzz-TARGET Fuzz/crashes/FILE
#
# The corpus each target grows is kept in Fuzz/.build-fuzz/corpus/ (not
# committed); the committed seeds in Fuzz/corpus/ are only read.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
scratch="$here/.build-fuzz"
SWIFT=${SWIFT:-swift}
all_targets="stream-frame json handshake reliable transport registry registry-client values datagrams tunnel beacon stream-mux event-lines chunks alerts"
targets=${FUZZ_TARGETS:-$all_targets}

write_seeds=false
seconds=60
case ${1:-} in
    --write-seeds) write_seeds=true ;;
    "") ;;
    *[!0-9]* | 0) echo "usage: $0 [SECONDS_PER_TARGET | --write-seeds]" >&2; exit 2 ;;
    *) seconds=$1 ;;
esac

# The Swift runtime's own crash reporter would race libFuzzer's handler
# (and wait on a backtrace); libFuzzer and ASan report crashes here.
SWIFT_BACKTRACE=enable=no
# LeakSanitizer is on: a target whose input leaks memory fails (libFuzzer
# checks after an input that allocated more than it freed).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export SWIFT_BACKTRACE ASAN_OPTIONS

mkdir -p "$scratch/logs"
echo "building fuzz targets ($targets)"
started=$(date +%s)
for target in $targets; do
    # One product at a time: `swift build` without --product would also
    # build the main package's executables, which a fuzzer build cannot link.
    if ! "$SWIFT" build --package-path "$here" --scratch-path "$scratch" -c release \
        --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address \
        --product "fuzz-$target" >"$scratch/logs/build-$target.log" 2>&1; then
        cat "$scratch/logs/build-$target.log" >&2
        echo "fuzz: building fuzz-$target failed" >&2
        exit 1
    fi
done
bin=$("$SWIFT" build --package-path "$here" --scratch-path "$scratch" -c release --show-bin-path)
echo "built in $(( $(date +%s) - started )) s"

if $write_seeds; then
    for target in $targets; do
        rm -rf "$here/corpus/$target"
        PILOT_FUZZ_WRITE_SEEDS="$here/corpus/$target" "$bin/fuzz-$target"
    done
    exit 0
fi

mkdir -p "$here/crashes"
failed=0
printf '%-16s %12s %10s %7s  %s\n' target executions "exec/s" cov result
for target in $targets; do
    work="$scratch/corpus/$target"
    log="$scratch/logs/$target.log"
    mkdir -p "$work"
    dict=""
    case $target in
        json | registry | registry-client) dict="-dict=$here/dict/json.dict" ;;
    esac
    # -timeout: one input taking 10 s is a hang. -malloc_limit_mb: one
    # allocation of 256 MB is an allocation without bound. -max_len 4096.
    set +e
    # shellcheck disable=SC2086 # $dict is one word or none
    "$bin/fuzz-$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$here/crashes/$target-" $dict \
        "$work" "$here/corpus/$target" >"$log" 2>&1
    status=$?
    set -e
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    coverage=$(sed -n 's/^#[0-9]*.*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if ! grep -q 'inline 8-bit counters' "$log"; then
        result="FAILED: no coverage instrumentation (see $log)"
        failed=1
    elif [ "$status" -eq 0 ]; then
        result=ok
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        kind=$(grep -m 1 -o -E 'Fatal error: .*|ERROR: libFuzzer: [a-z -]+|ERROR: AddressSanitizer: [a-z-]+' "$log" || true)
        result="CRASH ${kind:-exit $status}: ${artifact:-see $log}"
        failed=1
        {
            echo "---- fuzz-$target ($log)"
            grep -E 'Fatal error|ERROR:|^ *#[0-9]+ 0x.* in ' "$log" | grep -v -E 'libFuzzer/|compiler-rt/|libc\.so|_start ' | head -n 25
            if [ -n "$artifact" ] && [ -f "$artifact" ]; then
                # The input in hex, for a CI log whose files are gone.
                echo "input ($(wc -c <"$artifact") bytes, hex): $(od -An -v -tx1 "$artifact" | tr -d ' \n' | cut -c1-2048)"
            fi
            echo "----"
        } >&2
    fi
    printf '%-16s %12s %10s %7s  %s\n' "$target" "${executions:-?}" "${rate:-?}" "${coverage:-?}" "$result"
done
exit "$failed"
