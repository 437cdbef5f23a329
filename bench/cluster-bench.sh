#!/usr/bin/env bash
# Replicated holds/s against single-node holds/s, in one sitting on one machine.
#
#   bash bench/cluster-bench.sh [SECONDS] [CONNECTIONS]
#
# Starts a single-node server (2 shards) and runs the load generator's hot-section workload
# (closed loop) against it; then starts a 3-node cluster (2 shards) on 127.0.0.1 and runs the
# same workload through each node in turn: through the node that leads the event's shard
# (served there) and through the others (forwarded to it). Then a second single-node run,
# so drift of the machine shows. Prints the load generator's tables, each node's
# /v1/cluster and the leaders' decisions per log entry. Everything listens on 127.0.0.1,
# stops by itself, and only the processes this script started are stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
bin=target/release/boxoffice
load=target/release/boxoffice-load
[ -x "$bin" ] && [ -x "$load" ] || cargo build --release --bin boxoffice --bin boxoffice-load
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export BOXOFFICE_ADMIN_TOKEN=bench-admin BOXOFFICE_JWT_SECRET=bench-secret
base=$((20000 + RANDOM % 20000))

wait_http() {
  for _ in $(seq 1 200); do
    curl -sf "http://$1/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2
  return 1
}

run_load() {
  echo "== $1"
  timeout $((secs + 60)) "$load" --url "http://$2" -d "${secs}s" -c "$conns" 2>&1 \
    | grep -E "kind|hold |verification|boxoffice:"
}

single() {
  local port=$((base + 90 + $1))
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/single-$1" --shards 2 \
    >"$work/single-$1.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_http "127.0.0.1:$port"
  run_load "single node, run $1" "127.0.0.1:$port"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

single 1

cat >"$work/cluster.toml" <<EOF
shards = 2
[[nodes]]
id = 1
http = "127.0.0.1:$((base + 1))"
raft = "127.0.0.1:$((base + 11))"
[[nodes]]
id = 2
http = "127.0.0.1:$((base + 2))"
raft = "127.0.0.1:$((base + 12))"
[[nodes]]
id = 3
http = "127.0.0.1:$((base + 3))"
raft = "127.0.0.1:$((base + 13))"
EOF
for n in 1 2 3; do
  RUST_LOG=warn "$bin" serve --cluster "$work/cluster.toml" --node-id "$n" \
    --data-dir "$work/node-$n" >"$work/node-$n.log" 2>&1 &
  pids+=("$!")
done
for n in 1 2 3; do wait_http "127.0.0.1:$((base + n))"; done
# Let the leaders settle on their preferred nodes (shard s on node s+1).
sleep 5
curl -s "http://127.0.0.1:$((base + 1))/v1/cluster"; echo
for n in 1 2 3; do
  run_load "cluster, 3 nodes, load sent to node $n" "127.0.0.1:$((base + n))"
done
for n in 1 2 3; do
  echo "== node $n: /v1/cluster and decisions per entry as a leader"
  curl -s "http://127.0.0.1:$((base + n))/v1/cluster"; echo
  curl -s "http://127.0.0.1:$((base + n))/metrics" \
    | grep -E '^boxoffice_cluster_(entries|decisions|forwarded)_total' || true
done

single 2
