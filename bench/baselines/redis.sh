#!/usr/bin/env bash
# Baseline: the hot-section workload the way ticket sites usually build it on Redis: one
# Lua script checks what is left, takes one ticket and records the hold atomically, with
# appendonly yes and appendfsync always (every write is fsynced before the reply).
#
# Installs redis-server and redis-tools from Debian's packages if missing, runs a private
# redis-server in a temporary directory on 127.0.0.1, drives it with redis-benchmark
# (EVALSHA of the script), stops it by its PID, and prints one line.
#
# Usage: bench/baselines/redis.sh [seconds=10] [connections=64]
set -euo pipefail
secs=${1:-10}
conns=${2:-64}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

dir=$(mktemp -d -p "${TMPDIR:-/tmp}" boxoffice-redis.XXXXXX)
port=$((20000 + RANDOM % 20000))
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" \
  --appendonly yes --appendfsync always --daemonize no --logfile "$dir/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
for _ in $(seq 100); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done

cli hset section:ga capacity 10000000 available 10000000 held 0 sold 0 >/dev/null
sha=$(cli script load "
local available = tonumber(redis.call('HGET', KEYS[1], 'available'))
local qty = tonumber(ARGV[2])
if available < qty then return redis.error_reply('sold_out') end
redis.call('HINCRBY', KEYS[1], 'available', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
local id = redis.call('INCR', 'hold:seq')
redis.call('HSET', 'hold:' .. id, 'section', KEYS[1], 'user', ARGV[1], 'qty', qty)
return id
")

# redis-benchmark stops after a request count: size it from a short probe so that the run
# lasts about $secs seconds.
probe=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$conns" -n 5000 -r 10000 --csv \
  EVALSHA "$sha" 1 section:ga u__rand_int__ 1 | tail -1 | cut -d, -f2 | tr -d '"')
n=$(awk -v r="$probe" -v s="$secs" 'BEGIN {printf "%d", r * s}')
line=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$conns" -n "$n" -r 10000 --csv \
  EVALSHA "$sha" 1 section:ga u__rand_int__ 1 | tail -1 | tr -d '"')
IFS=, read -r _ rps _avg _min p50 _p95 p99 _max <<<"$line"
held=$(cli hget section:ga held)
holds=$(cli get hold:seq)
printf 'redis Lua appendfsync=always (redis-benchmark, %s connections, %s requests): %.0f holds/s, p50 %s ms, p99 %s ms, consistent=%s\n' \
  "$conns" "$n" "$rps" "$p50" "$p99" "$([ "$held" = "$holds" ] && echo t || echo f)"
