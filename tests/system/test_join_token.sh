#!/bin/sh
# The fleet's join token stays out of ps: the registry and the nodes read it
# from a file (--join-token @FILE) or the environment (PILOT_JOIN_TOKEN);
# nodes holding it register, a node without it does not; given inline it
# still works, with a warning that names ps and not the token.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_command ps procps
SECRET="fleet-secret-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$SECRET" > "$SCRATCH/token"
chmod 600 "$SCRATCH/token"
start_bg "$SCRATCH/registry.log" "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry" --join-token "@$SCRATCH/token" --log-level notice
REGISTRY_PID=$LAST_PID
wait_until 10 "registry address" -- test -s "$SCRATCH/registry/registry.addr"
REGISTRY=$(cat "$SCRATCH/registry/registry.addr")
registered() { "$PILOT" status --json --state-dir "$SCRATCH/$1" | grep -q '"registered":true'; }
"$PILOT" init --hostname file-01 --registry "$REGISTRY" --join-token "@$SCRATCH/token" --state-dir "$SCRATCH/file-01" > /dev/null || fail "init file-01"
"$PILOT" init --hostname env-01 --registry "$REGISTRY" --state-dir "$SCRATCH/env-01" > /dev/null || fail "init env-01"
"$PILOT" init --hostname none-01 --registry "$REGISTRY" --state-dir "$SCRATCH/none-01" > /dev/null || fail "init none-01"
if grep -q "$SECRET" "$SCRATCH/file-01/config"; then fail "pilot init copied the token out of its file into the config"; fi
start_bg "$SCRATCH/file-01.log" "$PILOT" agent --state-dir "$SCRATCH/file-01" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
FILE_PID=$LAST_PID
start_bg "$SCRATCH/env-01.log" env PILOT_JOIN_TOKEN="$SECRET" "$PILOT" agent --state-dir "$SCRATCH/env-01" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
ENV_PID=$LAST_PID
start_bg "$SCRATCH/none-01.log" "$PILOT" agent --state-dir "$SCRATCH/none-01" --tunnel-listen 127.0.0.1:0 --no-metrics --log-level notice
wait_until 15 "file-01 registered with the token from its file" -- registered file-01
wait_until 15 "env-01 registered with PILOT_JOIN_TOKEN" -- registered env-01
sleep 2
if registered none-01; then fail "none-01 registered without the join token"; fi
for pid in $REGISTRY_PID $FILE_PID $ENV_PID; do
    if ps -o args= -p "$pid" | grep -q "$SECRET"; then fail "ps shows the token: $(ps -o args= -p "$pid")"; fi
done
for log in registry file-01 env-01; do
    if grep -q "$SECRET" "$SCRATCH/$log.log"; then fail "the token is in $log's log"; fi
done
# Inline: it works, with a warning that does not repeat it.
INLINE="inline-secret-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
"$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry2" --join-token "$INLINE" --log-level notice > /dev/null 2> "$SCRATCH/inline.err" &
INLINE_PID=$!
PIDS="$PIDS $INLINE_PID"
wait_until 10 "the inline registry's address" -- test -s "$SCRATCH/registry2/registry.addr"
grep -q "ps shows it to every local user" "$SCRATCH/inline.err" || fail "no warning for an inline --join-token: $(cat "$SCRATCH/inline.err")"
if grep -q "$INLINE" "$SCRATCH/inline.err"; then fail "the warning repeats the inline token"; fi
# A missing file is one line naming the flag.
expect_status 64 "a join token file that is not there" -- "$PILOT" registry --listen 127.0.0.1:0 --http off --state-dir "$SCRATCH/registry3" --join-token "@$SCRATCH/nope"
expect_one_line_error "a join token file that is not there"
printf "%s" "$ERR" | grep -q -- "--join-token" || fail "the error does not name --join-token: $ERR"
echo "ok: the join token from a file and from PILOT_JOIN_TOKEN registers nodes, none without it, never in ps or a log; inline it works with a warning"
