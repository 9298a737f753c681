#!/usr/bin/env bash
# Compares two builds of taskflow on the in-memory workload: alternated runs of the `profile`
# example of this workspace and of another build, in pairs, and for each producer count the
# geometric mean of the pairs' time ratios (other ÷ this) and how many pairs the other build won.
# Each run is the median of its batches; pairs alternate which build runs first. Run it with the
# same binary on both sides to see the spread the method has on the machine.
#
#   git worktree add /tmp/base <commit>
#   (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release \
#     -p taskflow-benches --example profile)
#   benches/run-pairs.sh /tmp/base-target/release/examples/profile
#   TASKFLOW_BENCH_PAIRS=24 TASKFLOW_BENCH_PRODUCERS="1 8 64" benches/run-pairs.sh <other profile>
#   TASKFLOW_BENCH_SYSTEM=welcome benches/run-pairs.sh <other profile>   # tasks with arguments
set -euo pipefail
# shellcheck source=benches/other-build.sh
source "$(dirname "$0")/other-build.sh"
other_build "profile example binary" "$@"
pairs=${TASKFLOW_BENCH_PAIRS:-16}
batches=${TASKFLOW_BENCH_BATCHES:-200}
producers=${TASKFLOW_BENCH_PRODUCERS:-8 64}
system=${TASKFLOW_BENCH_SYSTEM:-taskflow}
cargo build -q --release -p taskflow-benches --example profile
this=${CARGO_TARGET_DIR:-target}/release/examples/profile

median() { "$1" "$system" 1000 "$2" "$batches" | sed 's/.*median_secs=\([0-9.]*\).*/\1/'; }
# The middle value of a column of numbers.
middle() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] * 1000 }'; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
for p in $producers; do
  : >"$out"
  for pair in $(seq "$pairs"); do
    if [ $((pair % 2)) -eq 1 ]; then
      a=$(median "$this" "$p")
      b=$(median "$other" "$p")
    else
      b=$(median "$other" "$p")
      a=$(median "$this" "$p")
    fi
    echo "producers=$p pair=$pair this_secs=$a other_secs=$b" >&2
    echo "$a $b" >>"$out"
  done
  summary=$(awk '{ n++; r = $2 / $1; s += log(r); if (r < 1) won++ }
    END { printf "pairs=%d other/this=%.3f (geometric mean) other_faster_in=%d", n, exp(s / n), won }' "$out")
  echo "producers=$p $summary this_median=$(cut -d' ' -f1 "$out" | middle)ms other_median=$(cut -d' ' -f2 "$out" | middle)ms"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
