#!/usr/bin/env bash
# Measures every performance target of BENCHMARKS.md in one go, each with its own harness, and
# prints each figure beside its target with a verdict: in memory (`run-inmemory.sh`), HTTP
# (`run-http.sh`), persisted on SQLite (the `persisted` example), against effectum
# (`run-peers.sh`), memory over 10,000,000 tasks (`memory_run`), recovery after SIGKILL
# (`recovery_time`) and the admin list over 1,000,000 stored rows (`scale`). Every harness's own
# output is kept in a directory, whose path it prints, for the figures the verdicts leave out.
# About 5 minutes on 2 cores, once built.
#
#   benches/run-targets.sh
#   TASKFLOW_BENCH_TARGETS="inmemory http" benches/run-targets.sh   # a subset
#   TASKFLOW_BENCH_OUT=/tmp/targets benches/run-targets.sh          # keep the outputs there
set -euo pipefail
cd "$(dirname "$0")/.."
known="inmemory http persisted peers memory recovery scale"
targets=${TASKFLOW_BENCH_TARGETS:-$known}
for target in $targets; do
  if [[ " $known " != *" $target "* ]]; then
    echo "unknown target \`$target\` in TASKFLOW_BENCH_TARGETS; expected any of: $known" >&2
    exit 2
  fi
done
wants() { [[ " $targets " == *" $1 "* ]]; }
out=${TASKFLOW_BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"

# The examples run from here; the scripts build what they run themselves.
cargo build -q --release -p taskflow-benches --example persisted --example scale
cargo build -q --release -p taskflow-examples --example memory_run --example recovery_time
examples=${CARGO_TARGET_DIR:-target}/release/examples

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); outputs in $out" >&2
# Each harness in turn, so that none shares the machine with another.
step() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  # A harness that fails (a missing `wrk`, say) leaves its target "not measured", not the rest;
  # what it printed before it failed is kept apart, so that no verdict reads a partial run.
  if ! "$@" >"$out/$name.txt" 2>"$out/$name.log"; then
    mv "$out/$name.txt" "$out/$name.failed.txt"
    echo "== $name failed: see $out/$name.log" >&2
  fi
}
if wants inmemory; then step inmemory benches/run-inmemory.sh; fi
if wants http; then step http benches/run-http.sh; fi
if wants persisted; then step persisted "$examples/persisted" 50000 64 3; fi
if wants peers; then step peers benches/run-peers.sh; fi
if wants memory; then step memory "$examples/memory_run" 10000000; fi
if wants recovery; then
  rm -f "$out"/recovery.db*
  step recovery "$examples/recovery_time" measure "$out/recovery.db" 100000
  rm -f "$out"/recovery.db*
fi
if wants scale; then step scale "$examples/scale" 1000000; fi

# `verdict <value> <target> <figure as printed> <awk condition on v, true when the value meets
# the target>`: one line of the summary; an empty value was not measured.
verdict() {
  awk -v v="$1" -v target="$2" -v figure="$3" "BEGIN {
    if (v == \"\") printf \"%-44s %-26s %s\n\", target, \"-\", \"not measured\"
    else printf \"%-44s %-26s %s\n\", target, figure, ($4) ? \"met\" : \"missed\"
  }"
}
# What harness $1 printed: nothing when it failed.
output() { cat "$out/$1.txt" 2>/dev/null || true; }
# The value of key $2 (`key=value`) on the lines harness $1 printed that match $3, if any.
field() { output "$1" | { grep -e "$3" || true; } | sed -n "s|^\(.*[[:space:]]\)\{0,1\}$2=\([^[:space:]]*\).*|\2|p"; }

echo
printf "%-44s %-26s %s\n" "target" "measured" "verdict"
if wants inmemory; then
  for p in 1 8 64; do
    producers="$p producers"
    if [ "$p" = 1 ]; then producers="1 producer"; fi
    # Judged on the median of the rounds' ratios, each taken against the floor run of its own
    # round; the ratio of the systems' medians, which a change of the machine's speed between two
    # runs can pull apart, is shown beside it.
    ratio=$(output inmemory | sed -n "s/^producers=$p .* taskflow=[0-9.,]* median=\([0-9.]*\)x.*/\1/p")
    medians=$(output inmemory | sed -n "s/^producers=$p floor=.* taskflow=[0-9.]*ms (\([0-9.]*\)x).*/\1/p")
    verdict "$ratio" "in memory, $producers: <= 3x the floor" "${ratio}x (medians ${medians}x)" "v <= 3"
  done
fi
if wants http; then
  ratio=$(field http enqueue/spawn '^all pairs' | tr -d %)
  verdict "$ratio" "HTTP /enqueue: >= 80% of /spawn req/s" "${ratio}%" "v >= 80"
fi
if wants persisted; then
  slowest=$(field persisted per_sec ' producers=64 ' | sort -n | head -1)
  verdict "$slowest" "persisted, 64 producers: >= 50,000 tasks/s" "$slowest/s (slowest round)" "v >= 50000"
fi
if wants peers; then
  ratio=$(field peers taskflow-sqlite/effectum-sqlite '^producers=64 ')
  verdict "$ratio" "persisted, 64 producers: >= 4x effectum" "${ratio}x" "v >= 4"
fi
if wants memory; then
  first=$(field memory rss_mib '^tasks=100000 ')
  peak=$(field memory peak_mib '^done ')
  growth=$(awk -v a="$first" -v b="$peak" 'BEGIN { if (a != "" && b != "") printf "%.1f", b - a }')
  verdict "$growth" "memory: peak <= 64 MiB over RSS at 100,000" "$first -> $peak MiB" "v <= 64"
fi
if wants recovery; then
  built=$(output recovery | sed -n 's/^recover: build() took \([0-9.]*\) s.*/\1/p')
  verdict "$built" "recovery of 100,000 tasks: build() < 2 s" "$built s" "v < 2"
fi
if wants scale; then
  p99=$(field scale p99_ms '^list: ')
  verdict "$p99" "list over 1,000,000 rows: p99 < 10 ms" "$p99 ms" "v < 10"
fi
