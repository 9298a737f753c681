#!/usr/bin/env bash
# Runs the in-memory workload through the floor, the ledgers and taskflow in turn (the `profile`
# example: each run is a median over batches of 1,000 tasks), several rounds, and prints for each
# system and producer count the median of its runs and its ratio to the floor's, then each
# round's ratio to the floor run of the same round and their median, then its fastest and slowest
# run. Systems run in turn so that a slow minute of the machine falls on all of them alike; where
# the machine changes speed between two runs of a round, that round's ratio is off and its
# median sets it aside, while the medians of the runs may then come from different phases.
#
#   benches/run-inmemory.sh               # 5 rounds of 400 batches, 1, 8 and 64 producers
#   TASKFLOW_BENCH_ROUNDS=3 TASKFLOW_BENCH_PRODUCERS="8" benches/run-inmemory.sh
#   TASKFLOW_BENCH_SYSTEMS="floor taskflow" TASKFLOW_BENCH_WORKERS=1 benches/run-inmemory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${TASKFLOW_BENCH_ROUNDS:-5}
batches=${TASKFLOW_BENCH_BATCHES:-400}
producers=${TASKFLOW_BENCH_PRODUCERS:-1 8 64}
systems=${TASKFLOW_BENCH_SYSTEMS:-floor compact ledger taskflow}
cargo build -q --release -p taskflow-benches --example profile
profile=${CARGO_TARGET_DIR:-target}/release/examples/profile
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
for round in $(seq "$rounds"); do
  for p in $producers; do
    for system in $systems; do
      "$profile" "$system" 1000 "$p" "$batches" | tee -a "$out" >&2
    done
  done
  echo "== round $round done" >&2
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# The median batch of each run of system $1 with $2 producers, in seconds, in round order.
runs_in_order() { grep "^system=$1 producers=$2 " "$out" | sed 's/.*median_secs=\([0-9.]*\).*/\1/'; }
# The same, fastest first.
runs() { runs_in_order "$1" "$2" | sort -g; }

echo "medians of the runs' median batch, per 1,000 tasks (ratio to the floor)"
for p in $producers; do
  line="producers=$p"
  floor=""
  for system in $systems; do
    median=$(runs "$system" "$p" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    if [ "$system" = floor ]; then floor=$median; fi
    ratio=$(awk -v m="$median" -v f="$floor" 'BEGIN { if (f > 0) printf " (%.2fx)", m / f }')
    line="$line $system=$(awk -v m="$median" 'BEGIN { printf "%.3fms", m * 1000 }')$ratio"
  done
  echo "$line"
done

# Each round's run of system $1 with $2 producers over the floor's run of that round, in round
# order, then their median. Runs are appended round by round, so the k-th of each is round k's.
paired() {
  local ratios
  ratios=$(paste <(runs_in_order "$1" "$2") <(runs_in_order floor "$2") |
    awk '$2 > 0 { printf "%.4f\n", $1 / $2 }')
  awk '{ printf "%s%.2f", (NR > 1 ? "," : ""), $1 }' <<<"$ratios"
  sort -g <<<"$ratios" | awk '{ v[NR] = $1 } END { if (NR) printf " median=%.2fx", v[int((NR + 1) / 2)] }'
}

echo "each round's ratio to the floor run of the same round, and their median"
for p in $producers; do
  line="producers=$p"
  for system in $systems; do
    if [ "$system" != floor ]; then line="$line $system=$(paired "$system" "$p")"; fi
  done
  echo "$line"
done

# A system whose runs spread far apart met a faster and a slower phase of the machine: compare
# its ratio only with figures from the same minutes.
echo "fastest and slowest run per system, per 1,000 tasks"
for p in $producers; do
  line="producers=$p"
  for system in $systems; do
    range=$(runs "$system" "$p" |
      awk 'NR == 1 { low = $1 } { high = $1 } END { printf "%.3f-%.3fms", low * 1000, high * 1000 }')
    line="$line $system=$range"
  done
  echo "$line"
done
