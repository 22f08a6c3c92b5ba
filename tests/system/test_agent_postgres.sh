#!/bin/sh
# The PostgreSQL check against a real server from Debian's packages,
# started by this test in its scratch directory (a Unix socket, no TCP):
# `SELECT 1` answers → ok with a latency; the server stopped → critical.
# shellcheck source=tests/system/lib.sh
. "$(dirname "$0")/lib.sh"
require_root
require_command psql postgresql-client
require_command setpriv util-linux
PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[ -x "${PGBIN:-/nonexistent}/initdb" ] || skip_or_fail "needs the PostgreSQL server (apt-get install postgresql)"
id postgres > /dev/null 2>&1 || skip_or_fail "needs the postgres user (apt-get install postgresql)"

chmod 755 "$SCRATCH"
mkdir "$SCRATCH/pg"
chown postgres:postgres "$SCRATCH/pg"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
as_postgres "$PGBIN/initdb" -D "$SCRATCH/pg/data" -A trust -U postgres > "$SCRATCH/initdb.log" 2>&1 || fail "initdb: $(tail -3 "$SCRATCH/initdb.log")"
PORT=$(free_port tcp)
as_postgres "$PGBIN/pg_ctl" -D "$SCRATCH/pg/data" -l "$SCRATCH/pg/server.log" -w -t 30 \
    -o "-k $SCRATCH/pg -p $PORT -c listen_addresses=''" start > /dev/null || fail "pg_ctl start: $(tail -3 "$SCRATCH/pg/server.log")"
POSTMASTER=$(head -1 "$SCRATCH/pg/data/postmaster.pid")
PIDS="$PIDS $POSTMASTER" # stopped by the cleanup if this test fails

CHECK="postgres:db=host=$SCRATCH/pg port=$PORT user=postgres dbname=postgres connect_timeout=3"
health() { "$PILOT" agent --once --print --hostname db-01 --check "$CHECK" --state-dir "$SCRATCH/node" | grep '"topic":"health/db/db-01"'; }
expect_status 0 "check with the server up" -- health
printf '%s' "$OUT" | grep -q '"status":"ok"' || fail "server up: $OUT"
printf '%s' "$OUT" | grep -q '"latency_ms":' || fail "no latency: $OUT"

as_postgres "$PGBIN/pg_ctl" -D "$SCRATCH/pg/data" -m immediate -w stop > /dev/null || fail "pg_ctl stop"
expect_status 0 "check with the server down" -- health
printf '%s' "$OUT" | grep -q '"status":"critical"' || fail "server down: $OUT"
echo "ok: SELECT 1 through psql against a real server, ok then critical once it stopped"
