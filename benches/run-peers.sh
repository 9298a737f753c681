#!/usr/bin/env bash
# Runs the peer workload (n no-op jobs, enqueued by 1, 8 and 64 producers, until all are done)
# through taskflow, apalis (apalis-sqlite) and effectum back to back, then prints the ratios
# taskflow / peer. effectum pins libsqlite3-sys 0.28, so it is a separate package outside the
# workspace (benches/peers/effectum, with its own Cargo.lock) and runs as its own process.
#
#   benches/run-peers.sh                  # 10,000 jobs, median of 3 runs
#   TASKFLOW_BENCH_TASKS=2000 TASKFLOW_BENCH_REPEAT=1 benches/run-peers.sh
#   TASKFLOW_BENCH_SYSTEMS=taskflow-sqlite TASKFLOW_BENCH_TASKS=20000 benches/run-peers.sh  # no apalis
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
cargo bench -q -p taskflow-benches --features peers --bench peers | tee -a "$out"
# Its own lockfile, its own build directory (under the workspace's, so /target ignores it).
cargo run -q --release --manifest-path benches/peers/effectum/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}/effectum" | tee -a "$out"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "ratios (taskflow per_sec / peer per_sec; > 1 means taskflow is faster)"
awk '
  {
    # Fields of this line only: a failed run has no per_sec and gets no ratio.
    split("", f)
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    rate[f["system"], f["producers"]] = f["per_sec"]
    systems[f["system"]] = 1
    producers[f["producers"]] = 1
  }
  END {
    for (p in producers) {
      for (s in systems) {
        if (s ~ /^taskflow/) continue
        for (t in systems) {
          if (t !~ /^taskflow/ || rate[t, p] == "" || rate[s, p] == "") continue
          printf "producers=%s %s/%s=%.1f\n", p, t, s, rate[t, p] / rate[s, p]
        }
      }
    }
  }' "$out" | sort -t= -k2 -n
