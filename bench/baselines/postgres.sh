#!/usr/bin/env bash
# Baseline: the hot-section workload the way ticket sites usually build it on PostgreSQL.
# Each transaction locks the section row with SELECT ... FOR UPDATE, checks what is left,
# takes one ticket and records the hold, then commits with PostgreSQL's default durability
# (fsync = on, synchronous_commit = on: every commit waits for its WAL flush).
#
# Installs PostgreSQL from Debian's packages if it is missing, runs a private cluster in a
# temporary directory on 127.0.0.1 (as the postgres user when run as root), drives it with
# pgbench and a custom script, stops the cluster by its own pg_ctl, and prints one line.
#
# Usage: bench/baselines/postgres.sh [seconds=10] [connections=64]
set -euo pipefail
secs=${1:-10}
conns=${2:-64}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v pgbench >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

dir=$(mktemp -d -p "${TMPDIR:-/tmp}" boxoffice-pg.XXXXXX)
chmod 755 "$dir"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$((20000 + RANDOM % 20000))
cleanup() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$((conns + 20))" start >/dev/null

psql_() { as_pg psql -q -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_ <<'SQL'
CREATE TABLE sections (
  id text PRIMARY KEY,
  capacity bigint NOT NULL,
  available bigint NOT NULL,
  held bigint NOT NULL DEFAULT 0,
  sold bigint NOT NULL DEFAULT 0
);
CREATE TABLE holds (
  id bigserial PRIMARY KEY,
  section_id text NOT NULL REFERENCES sections(id),
  user_id text NOT NULL,
  qty int NOT NULL,
  expires_at timestamptz NOT NULL
);
INSERT INTO sections (id, capacity, available) VALUES ('ga', 10000000, 10000000);
SQL

cat > "$dir/hold.sql" <<'SQL'
\set user random(0, 9999)
BEGIN;
SELECT available FROM sections WHERE id = 'ga' FOR UPDATE;
UPDATE sections SET available = available - 1, held = held + 1 WHERE id = 'ga' AND available >= 1;
INSERT INTO holds (section_id, user_id, qty, expires_at) VALUES ('ga', 'u' || :user, 1, now() + interval '10 minutes');
COMMIT;
SQL
chmod 644 "$dir/hold.sql"

cd "$dir"
out=$(as_pg pgbench -h 127.0.0.1 -p "$port" -U postgres -n -c "$conns" -j 2 -T "$secs" \
  -f "$dir/hold.sql" -l --log-prefix="$dir/txn" postgres 2>&1)
tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)
# Per-transaction log: the third column is the latency in microseconds.
read -r p50 p99 <<<"$(cat "$dir"/txn* | awk '{print $3}' | sort -n |
  awk '{v[NR]=$1} END {printf "%.3f %.3f", v[int(NR*0.50)]/1000, v[int(NR*0.99)]/1000}')"
check=$(psql_ -At -c "SELECT sold + held + available = capacity AND held = (SELECT count(*) FROM holds) FROM sections")
printf 'postgres FOR UPDATE (pgbench, %s connections, %ss): %.0f holds/s, p50 %s ms, p99 %s ms, consistent=%s\n' \
  "$conns" "$secs" "$tps" "$p50" "$p99" "$check"
