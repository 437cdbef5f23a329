#!/usr/bin/env bash
# What remembering keyed refusals costs at a sell-out, in one sitting, one command:
#
#   bash bench/keyed-refusals.sh BASELINE_BINARY [BINARY] [ROUNDS]
#
# The sellout workload (200,000 buyers, one purchase each, for 50 tickets: 199,950 answers
# are 409 sold_out), closed loop, 64 connections, with and without a fresh Idempotency-Key
# on every request (`boxoffice-load --idempotency-keys`), for BASELINE_BINARY (e.g. a build
# from before refusals were remembered) and BINARY (default the tree's), alternating, ROUNDS
# times (default 3). Each run is `boxoffice-load --spawn` (its own server on 127.0.0.1 port
# 0, stopped by its PID). Prints each run's throughput, latency and server CPU per answer;
# the reports stay in $OUT (default a temporary directory, printed). Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?give the baseline binary}
bin=${2:-target/release/boxoffice}
rounds=${3:-3}
load=target/release/boxoffice-load
cargo build --release --bin boxoffice --bin boxoffice-load
out=${OUT:-$(mktemp -d)}
echo "reports in $out"
for round in $(seq "$rounds"); do
  for which in base new; do
    b=$base; [ "$which" = new ] && b=$bin
    for keys in keys nokeys; do
      flag=(); [ "$keys" = keys ] && flag=(--idempotency-keys)
      json="$out/$which-$keys-$round.json"
      timeout 300 "$load" --spawn "$b" -w sellout --buyers 200000 --tickets 50 "${flag[@]}" \
        -c 64 --quiet --json "$json" > "$out/$which-$keys-$round.txt" 2>&1
      printf '%s %-6s %-6s ' "$round" "$which" "$keys"
      grep -E '^  purchase ' "$out/$which-$keys-$round.txt" | awk '{printf "%s req/s, p50 %s ms, p99 %s ms; ", $4, $5, $7}'
      grep 'CPU per answer' "$out/$which-$keys-$round.txt" | sed 's/^ *//'
    done
  done
done
