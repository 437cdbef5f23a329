#!/usr/bin/env bash
# Holds over HTTP at 64 connections with wrk, next to GET /health (no work) in the same
# run. Starts its own server on 127.0.0.1 in a temporary data directory and stops it by
# its PID. Usage: bench/wrk/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-64}
export BOXOFFICE_ADMIN_TOKEN=bench-admin BOXOFFICE_JWT_SECRET=bench-secret
cargo build --release --bin boxoffice -q
dir=$(mktemp -d -p "${TMPDIR:-/tmp}" boxoffice-wrk.XXXXXX)
port=$((20000 + RANDOM % 20000))
RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/release/boxoffice" serve --listen 127.0.0.1:$port --data-dir "$dir/data" --shards 2 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/ready >/dev/null && break; sleep 0.1; done
curl -sf -X POST http://127.0.0.1:$port/v1/events -H "Authorization: Bearer $BOXOFFICE_ADMIN_TOKEN" \
  -d '{"id":"bench","name":"Bench","sections":[{"id":"ga","name":"GA","price_cents":100,"capacity":100000000}]}' >/dev/null
echo "== GET /health (no work), $conns connections, ${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency http://127.0.0.1:$port/health
echo "== POST /v1/events/bench/holds, $conns connections, ${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/wrk/hold.lua http://127.0.0.1:$port/v1/events/bench/holds
curl -s http://127.0.0.1:$port/v1/events/bench | head -c 400; echo
curl -s http://127.0.0.1:$port/metrics | grep -E '^boxoffice_shard_batch_size_(sum|count)|^boxoffice_wal_fsync_seconds_(sum|count)' || true
