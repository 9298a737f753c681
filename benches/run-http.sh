#!/usr/bin/env bash
# Runs the HTTP load test: starts `examples/bench_server` on a loopback port, warms it up, then
# runs `wrk -t2 -c64` against `/spawn` and `/enqueue` in alternated pairs of 10 s (plus
# `/enqueue_persist` when TASKFLOW_BENCH_PERSIST=1, and `/spin` when TASKFLOW_BENCH_SPIN=1), and
# prints one line per run with req/s, p99 and the server's CPU per request (`utime` + `stime` from
# /proc/<pid>/stat, then each apart) and how often per request its threads were preempted
# (`nonvoluntary_ctxt_switches` of /proc/<pid>/task/*/status), then the ratio `/enqueue` /
# `/spawn` of each pair and over all pairs (and `/spin` / `/spawn`: what a route with
# TASKFLOW_BENCH_SPIN_NS of work of its own keeps here).
#
#   benches/run-http.sh                   # 5 pairs
#   TASKFLOW_BENCH_PAIRS=3 TASKFLOW_BENCH_PERSIST=1 benches/run-http.sh
#   TASKFLOW_BENCH_SPIN=1 TASKFLOW_BENCH_SPIN_NS=1500 benches/run-http.sh   # with the calibration
#   SERVER=/tmp/base-target/release/examples/bench_server benches/run-http.sh   # another build
#   TASKFLOW_BENCH_HISTORY=100 benches/run-http.sh   # the /enqueue manager's window in cache
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${TASKFLOW_BENCH_PAIRS:-5}
addr=${TASKFLOW_ADDR:-127.0.0.1:8042}
server=${SERVER:-${CARGO_TARGET_DIR:-target}/release/examples/bench_server}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
if [ -z "${SERVER:-}" ]; then
  cargo build -q --release -p taskflow-examples --example bench_server
fi
db=$(mktemp -d)
out=$(mktemp)
TASKFLOW_ADDR=$addr TASKFLOW_BENCH_DB="$db/bench-server.db" "$server" >/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$db" "$out"' EXIT
# shellcheck source=benches/wait-for-server.sh
source benches/wait-for-server.sh
wait_for_server "$addr"
# The server's user and system clock ticks, and its threads' preemptions so far.
usage() {
  local preempted
  # A thread that ended (or ends while they are read) no longer counts: the no-op routes start
  # none, and a blocking-pool thread lives 10 s past its last job.
  preempted=$({ cat "/proc/$pid"/task/*/status 2>/dev/null || true; } | awk '/^nonvoluntary_ctxt_switches/ { n += $2 } END { print n }')
  echo "$(awk '{ print $14, $15 }' "/proc/$pid/stat") $preempted"
}
run() {
  local before after report
  before=$(usage)
  report=$(wrk -t2 -c64 -d"$2" --latency -s benches/wrk/post.lua "http://$addr/$1")
  after=$(usage)
  awk -v pair="$3" -v route="$1" -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rps = $2 }
    / 99%/ { p99 = $2 }
    /requests in/ { n = $1 }
    END {
      split(before, b, " "); split(after, a, " ")
      user = (a[1] - b[1]) / hz * 1e6 / n; sys = (a[2] - b[2]) / hz * 1e6 / n
      printf "pair=%s route=%s req_per_sec=%.0f p99=%s cpu_us_per_req=%.1f user_us=%.1f sys_us=%.1f preempted_per_req=%.3f\n",
        pair, route, rps, p99, user + sys, user, sys, (a[3] - b[3]) / n
    }' <<<"$report"
}

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
run spawn 3s warmup >/dev/null
routes="spawn enqueue"
if [ "${TASKFLOW_BENCH_PERSIST:-0}" = 1 ]; then routes="$routes enqueue_persist"; fi
if [ "${TASKFLOW_BENCH_SPIN:-0}" = 1 ]; then routes="$routes spin"; fi
for pair in $(seq "$pairs"); do
  for route in $routes; do run "$route" 10s "$pair" | tee -a "$out"; done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "ratios (req/s over /spawn req/s)"
awk '
  {
    split("", f)
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    rate[f["pair"], f["route"]] = f["req_per_sec"]
    total[f["route"]] += f["req_per_sec"]
    if (f["pair"] > last) last = f["pair"]
  }
  END {
    for (p = 1; p <= last; p++) {
      printf "pair=%d enqueue/spawn=%.1f%%", p, 100 * rate[p, "enqueue"] / rate[p, "spawn"]
      if (total["spin"] > 0) printf " spin/spawn=%.1f%%", 100 * rate[p, "spin"] / rate[p, "spawn"]
      printf "\n"
    }
    printf "all pairs enqueue/spawn=%.1f%%", 100 * total["enqueue"] / total["spawn"]
    if (total["spin"] > 0) printf " spin/spawn=%.1f%%", 100 * total["spin"] / total["spawn"]
    printf "\n"
  }' "$out"
