#!/usr/bin/env bash
# Compares two builds of the bench server over HTTP: starts this workspace's `bench_server` and
# another build side by side on two loopback ports, then runs `wrk -t2 -c64` against `/spawn`
# and `/enqueue` of each, round after round, the two servers back to back for each route (which
# one runs first alternates by round). Prints each run, then for each route the geometric mean
# of the rounds' req/s ratios (other ÷ this) and how many rounds the other build won, and each
# build's `/enqueue` ÷ `/spawn` over all rounds. Comparing a route with the same route of the
# other build a few seconds apart is steadier than comparing ratios measured minutes apart (a
# set of `run-http.sh` per build): run it with the same binary on both sides to see the spread
# the method has on the machine.
#
#   git worktree add /tmp/base <commit>
#   (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release \
#     -p taskflow-examples --example bench_server)
#   benches/run-http-pairs.sh /tmp/base-target/release/examples/bench_server
#   TASKFLOW_BENCH_ROUNDS=10 TASKFLOW_BENCH_SECS=10 benches/run-http-pairs.sh <other bench_server>
set -euo pipefail
# shellcheck source=benches/other-build.sh
source "$(dirname "$0")/other-build.sh"
other_build "bench_server binary" "$@"
# shellcheck source=benches/wait-for-server.sh
source benches/wait-for-server.sh
rounds=${TASKFLOW_BENCH_ROUNDS:-6}
secs=${TASKFLOW_BENCH_SECS:-8}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build -q --release -p taskflow-examples --example bench_server
this=${CARGO_TARGET_DIR:-target}/release/examples/bench_server
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# Starts build $1 on port $2, with a database of its own.
start() {
  TASKFLOW_ADDR=127.0.0.1:$2 TASKFLOW_BENCH_DB="$dir/$2.db" "$1" >/dev/null &
  pids+=($!)
  wait_for_server "127.0.0.1:$2"
}
start "$this" 8043
start "$other" 8044
# The req/s of `wrk` on route $2 of the server on port $1 for $3.
rate() {
  local rps
  rps=$(wrk -t2 -c64 -d"$3" -s benches/wrk/post.lua "http://127.0.0.1:$1/$2" | awk '/Requests\/sec/ { print $2 }')
  [ -n "$rps" ] || { echo "wrk measured nothing on port $1, /$2" >&2; exit 1; }
  echo "$rps"
}
for port in 8043 8044; do rate "$port" enqueue 3s >/dev/null; done
# A server that could not bind its port (another process answered there) has exited by now.
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "a server exited: is port 8043 or 8044 taken?" >&2; exit 1; }
done

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
for round in $(seq "$rounds"); do
  for route in spawn enqueue; do
    if [ $((round % 2)) -eq 1 ]; then
      a=$(rate 8043 "$route" "${secs}s")
      b=$(rate 8044 "$route" "${secs}s")
    else
      b=$(rate 8044 "$route" "${secs}s")
      a=$(rate 8043 "$route" "${secs}s")
    fi
    echo "round=$round route=$route this_req_per_sec=$a other_req_per_sec=$b" | tee -a "$dir/runs" >&2
  done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

awk '
  {
    split("", f)
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    route = f["route"]; a = f["this_req_per_sec"]; b = f["other_req_per_sec"]
    n[route]++; logs[route] += log(b / a); if (b > a) won[route]++
    this[route] += a; other[route] += b
  }
  END {
    for (route in n)
      printf "route=%s rounds=%d other/this=%.3f (geometric mean) other_faster_in=%d\n",
        route, n[route], exp(logs[route] / n[route]), won[route]
    printf "enqueue/spawn this=%.1f%% other=%.1f%%\n",
      100 * this["enqueue"] / this["spawn"], 100 * other["enqueue"] / other["spawn"]
  }' "$dir/runs"
