#!/usr/bin/env bash
# compare.sh — what an option costs: keep-alive requests/s and the server's CPU time per request
# of the same server (release build, hello:app, one worker) in several variants, interleaved in
# one run; prints the medians and each variant's ratios to the first. CPU per request (summed
# over the server's processes, from /proc) is the figure a busy shared machine disturbs less.
#
# Usage:  bench/compare.sh TITLE GOAL NAME=ARGS [NAME=ARGS...]
#   e.g.  bench/compare.sh "stats" "CPU/request <= 1.02x off" "off=" "stats=--stats unix:/tmp/s.sock"
# The first variant is the baseline; GOAL is printed beside the others. Used by access_log.sh and
# stats_cost.sh. Two builds: ARGS that start with @DIR run DIR/webserver with DIR/$APP_FILE
# (a release directory of another checkout), e.g.
#       APP_FILE=libaxum_app.so:app bench/compare.sh axum-ab "CPU/request < 1.0x before" \
#         "before=@/path/to/old/target/release -w 1 --threads 1" "after=-w 1 --threads 1"
# (SKIP_BUILD=0 builds only this checkout's webserver and hello).
# Method: as bench/scenarios.sh — server pinned to CPU $SERVER_CPUS (1) in its own session,
# wrk -t1 -c$CONNS (50) pinned to CPU $WRK_CPUS (0), the variants' order rotated per round so a
# drift of the shared machine's load does not favour one; each server is started fresh and warmed
# for $WARMUP s. Ratios only: the absolute figures depend on what else runs on the box.
# Env: ROUNDS (5) DURATION (3) WARMUP (1) CONNS (50) SERVER_CPUS (1) WRK_CPUS (0)
#      BASE_PORT (18700) SKIP_BUILD (0) OUT_DIR START_TIMEOUT (20)
#      APP_FILE (libhello.so:app, in the release directory)
#      AFTER_EACH: a command run after each measurement, its output appended to the line
#      (access_log.sh counts the lines logged).
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
[[ $# -ge 3 ]] || { echo "usage: $0 TITLE GOAL NAME=ARGS [NAME=ARGS...]" >&2; exit 2; }
TITLE=$1; GOAL=$2; shift 2
ROUNDS="${ROUNDS:-5}"
OUT_DIR="${OUT_DIR:-${BENCH_WORK:-/tmp/webserver-bench}/$TITLE-$(date +%Y%m%d-%H%M%S)}"
export BENCH_DIR
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
wrk_defaults
trap 'stop_server; exit 130' INT TERM
for tool in wrk taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing (bench/setup.sh installs wrk)" >&2; exit 1; }
done
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -p webserver -p hello) || exit 1
fi
WS="$ROOT/target/release/webserver"
APP_FILE="${APP_FILE:-libhello.so:app}"
APP="$ROOT/target/release/$APP_FILE"
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/wrk"

declare -a variants
declare -A args_of results cpu
for v in "$@"; do
  variants+=("${v%%=*}")
  args_of[${v%%=*}]="${v#*=}"
done
n=${#variants[@]}
rps_of() { sed -n 's/^RESULT .* rps=\([0-9.]*\).*/\1/p' "$1" | tail -1; }
CLK_TCK=$(getconf CLK_TCK)
echo "compare.sh $TITLE: $ROUNDS round(s) x ${DURATION}s, wrk -t1 -c$CONNS keep-alive, server on CPU $SERVER_CPUS, wrk on CPU $WRK_CPUS"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: background busy $(background_busy)"
  # Rotate the order each round.
  order=("${variants[@]:$(( (r - 1) % n ))}" "${variants[@]:0:$(( (r - 1) % n ))}")
  for v in "${order[@]}"; do
    port=$BASE_PORT
    args=${args_of[$v]} ws=$WS app=$APP
    if [[ $args == @* ]]; then
      dir=${args%% *} && dir=${dir#@}
      if [[ $args == *" "* ]]; then args=${args#* }; else args=""; fi
      ws=$dir/webserver app=$dir/$APP_FILE
    fi
    start_server "$v" "exec $ws --bind 127.0.0.1:\$PORT $args $app" "$port" "$OUT_DIR/logs/r$r-$v.log" || continue
    url="http://127.0.0.1:$port/"
    (( WARMUP > 0 )) && taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$BENCH_DIR/get.lua" "$url" >/dev/null 2>&1
    out="$OUT_DIR/wrk/r$r-$v.txt"
    t0=$(session_ticks "$SRV_SID")
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 2s -s "$BENCH_DIR/get.lua" "$url" >"$out" 2>&1
    t1=$(session_ticks "$SRV_SID")
    stop_server
    after=""; [[ -n "${AFTER_EACH:-}" ]] && after=$(bash -c "$AFTER_EACH")
    rps=$(rps_of "$out")
    requests=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' "$out" | tail -1)
    cpu_us=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" -v n="${requests:-0}" 'BEGIN{ if (n>0) printf "%.2f", (b-a)/h*1e6/n; else print "NA" }')
    printf '  %-9s %10s req/s  %6s server CPU us/request  %s\n' "$v" "${rps:-NA}" "$cpu_us" "$after"
    results[$v]+="${rps:-} "
    cpu[$v]+="${cpu_us/NA/} "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "NA"} else if(NR%2){print a[(NR+1)/2]} else {printf "%.2f\n",(a[NR/2]+a[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="NA"||b=="NA"||b==0) print "NA"; else printf "%.3f", a/b }'; }
base=${variants[0]}
base_rps=$(median <<<"${results[$base]:-}")
base_cpu=$(median <<<"${cpu[$base]:-}")
echo
echo "| $TITLE | keep-alive req/s (median of $ROUNDS) | ratio to $base | server CPU µs/request | ratio to $base | goal |"
echo "|---|---:|---:|---:|---:|---|"
for v in "${variants[@]}"; do
  m=$(median <<<"${results[$v]:-}")
  c=$(median <<<"${cpu[$v]:-}")
  goal=""; [[ "$v" != "$base" ]] && goal="$GOAL"
  echo "| $v | $m | $(ratio "$m" "$base_rps") | $c | $(ratio "$c" "$base_cpu") | $goal |"
done
echo "(wrk outputs and server logs in $OUT_DIR)"
