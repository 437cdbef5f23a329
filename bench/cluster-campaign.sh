#!/usr/bin/env bash
# The full fault campaign of cluster mode (issue 17): 3 nodes in 3 network namespaces,
# 2 shards, a sale by concurrent clients through any node, and 100 kill -9 of a shard
# leader, 20 leader isolations (5 s), 10 one-way partitions and 20 leader pauses (SIGSTOP
# 1 s, over twice the election timeout). The history checker runs after every heal. It
# prints the failover time (kill -9 to the first acknowledged write on that shard) per
# kill, its p50 and max, and the checker's verdict; it exits non-zero on any violation.
#
# It is tests/tests/cluster_faults.rs with campaign sizes; every size can be overridden:
#   BOXOFFICE_CAMPAIGN_KILLS=100 BOXOFFICE_CAMPAIGN_ISOLATIONS=20 BOXOFFICE_CAMPAIGN_ONEWAY=10
#   BOXOFFICE_CAMPAIGN_PAUSES=20 BOXOFFICE_CAMPAIGN_ISOLATION_MS=5000
#   BOXOFFICE_CAMPAIGN_PAUSE_MS=1000 BOXOFFICE_CAMPAIGN_CLIENTS=3 BOXOFFICE_SEED=n
#   BOXOFFICE_CAMPAIGN_SECONDS=2700  (no new fault starts after it; the run then stops)
#
# Bounded: the test stops scheduling faults after BOXOFFICE_CAMPAIGN_SECONDS, and this
# script kills it (by its PID) 15 minutes after that. Needs root, ip and nft. The trap
# removes the run's namespaces (bo-<pid>x*-*) even if the test was killed.
set -euo pipefail
cd "$(dirname "$0")/.."

export BOXOFFICE_CAMPAIGN_KILLS="${BOXOFFICE_CAMPAIGN_KILLS:-100}"
export BOXOFFICE_CAMPAIGN_ISOLATIONS="${BOXOFFICE_CAMPAIGN_ISOLATIONS:-20}"
export BOXOFFICE_CAMPAIGN_ONEWAY="${BOXOFFICE_CAMPAIGN_ONEWAY:-10}"
export BOXOFFICE_CAMPAIGN_PAUSES="${BOXOFFICE_CAMPAIGN_PAUSES:-20}"
export BOXOFFICE_CAMPAIGN_ISOLATION_MS="${BOXOFFICE_CAMPAIGN_ISOLATION_MS:-5000}"
export BOXOFFICE_CAMPAIGN_PAUSE_MS="${BOXOFFICE_CAMPAIGN_PAUSE_MS:-1000}"
export BOXOFFICE_CAMPAIGN_SECONDS="${BOXOFFICE_CAMPAIGN_SECONDS:-2700}"
hard_limit=$((BOXOFFICE_CAMPAIGN_SECONDS + 900))

if [ "$(id -u)" != 0 ]; then
  echo "cluster-campaign: network namespaces need root" >&2
  exit 2
fi
for tool in ip nft setpriv; do
  command -v "$tool" >/dev/null || { echo "cluster-campaign: $tool is missing (apt-get install iproute2 nftables util-linux)" >&2; exit 2; }
done

cargo build --release --workspace --bins
test_bin=$(cargo test --release -p boxoffice-tests --test cluster_faults --no-run 2>&1 |
  sed -n 's/.*(\(target\/release\/deps\/cluster_faults-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$test_bin" ] || { echo "cluster-campaign: the test binary was not found" >&2; exit 2; }

log=$(mktemp -t cluster-campaign.XXXXXX)
pid=""      # the test process while it runs
run_pid=""  # its PID, which names its namespaces
watchdog=""
cleanup() {
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  if [ -n "$run_pid" ]; then
    # Namespaces the test could not remove (it was killed): its nodes died with it
    # (setpriv --pdeathsig); any process still inside one of them is one of ours.
    for ns in $(ip netns list | awk '{print $1}' | grep "^bo-${run_pid}x" || true); do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done
  fi
}
trap cleanup EXIT INT TERM

echo "== cluster campaign: $BOXOFFICE_CAMPAIGN_KILLS kills, $BOXOFFICE_CAMPAIGN_ISOLATIONS isolations, $BOXOFFICE_CAMPAIGN_ONEWAY one-way partitions, $BOXOFFICE_CAMPAIGN_PAUSES pauses; budget ${BOXOFFICE_CAMPAIGN_SECONDS} s; log $log"
"$test_bin" faults_lose_no_acknowledgement --exact --nocapture --test-threads 1 >"$log" 2>&1 &
pid=$!
run_pid=$pid
# The watchdog: kills the test (by its PID) after the hard limit. Its sleep is killed with
# it (the TERM trap), and it holds none of this script's output open.
(
  sleep "$hard_limit" &
  sleeper=$!
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  wait "$sleeper"
  echo "cluster-campaign: killed after $hard_limit s" >>"$log"
  kill -9 "$pid" 2>/dev/null
) </dev/null >/dev/null 2>&1 &
watchdog=$!
status=0
wait "$pid" || status=$?
pid=""

grep -E '^(seed|kill [0-9]+:|time budget)' "$log" | tail -n 200 || true
echo "== summary"
grep -E '^(check after|campaign verdict|failover|  [A-Z][A-Za-z]+:)' "$log" | grep -v '^check after' || true
grep -c '^check after.*: ok$' "$log" | sed 's/^/checks passed: /'
grep -E "panicked|the checker found" "$log" | head -5 || true
echo "== exit $status (full log: $log)"
exit "$status"
