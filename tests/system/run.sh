#!/bin/sh
# Runs every tests/system/test_*.sh and prints "N passed, N failed, N skipped".
set -u
dir=$(dirname "$0")
passed=0; failed=0; skipped=0; failures=""
for test in "$dir"/test_*.sh; do
    name=$(basename "$test" .sh)
    printf '== %s\n' "$name"
    started=$(date +%s)
    sh "$test"
    status=$?
    printf '== %s: exit %d after %d s\n' "$name" "$status" "$(( $(date +%s) - started ))"
    case $status in
        0) passed=$((passed + 1)) ;;
        77) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)); failures="$failures $name" ;;
    esac
done
[ -z "$failures" ] || printf 'failed:%s\n' "$failures"
printf 'system tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" = 0 ]
