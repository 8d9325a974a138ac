#!/usr/bin/env bash
# access_log.sh — what writing the access log costs: keep-alive requests/s of the same server
# (release build, hello:app, one worker) with the access log off, on (Apache combined, to a file)
# and on as JSON lines, interleaved in one run; prints the medians and the ratios on/off, and the
# server's CPU time per request (summed over its processes), which a busy shared machine disturbs
# less than the rate. The goal (issue 13): on/off >= 0.90 (at most 10 % of keep-alive throughput).
#
# Usage:  bench/access_log.sh            (ROUNDS=5 DURATION=3: about 1.5 minutes)
# Method: as bench/scenarios.sh — server pinned to CPU $SERVER_CPUS (1) in its own session,
# wrk -t1 -c$CONNS (50) pinned to CPU $WRK_CPUS (0), the variants' order rotated per round so a
# drift of the shared machine's load does not favour one; each server is started fresh and warmed
# for $WARMUP s. Ratios only: the absolute figures depend on what else runs on the box.
# Env: ROUNDS (5) DURATION (3) WARMUP (1) CONNS (50) SERVER_CPUS (1) WRK_CPUS (0)
#      BASE_PORT (18700) SKIP_BUILD (0) OUT_DIR START_TIMEOUT (20)
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-3}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BASE_PORT="${BASE_PORT:-18700}"
START_TIMEOUT="${START_TIMEOUT:-20}"
OUT_DIR="${OUT_DIR:-${BENCH_WORK:-/tmp/webserver-bench}/access-log-$(date +%Y%m%d-%H%M%S)}"
export BENCH_DIR
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM
for tool in wrk taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "access_log.sh: $tool is missing (bench/setup.sh installs wrk)" >&2; exit 1; }
done
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release -p webserver -p hello) || exit 1
fi
WS="$ROOT/target/release/webserver"
APP="$ROOT/target/release/libhello.so:app"
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/wrk"
LOG_FILE="$OUT_DIR/access.log"

variants=(off combined json)
args_of() {
  case "$1" in
    off)      echo "" ;;
    combined) echo "--access-logfile $LOG_FILE" ;;
    json)     echo "--access-logfile $LOG_FILE --access-logformat json" ;;
  esac
}

rps_of() { sed -n 's/^RESULT .* rps=\([0-9.]*\).*/\1/p' "$1" | tail -1; }

declare -A results cpu
CLK_TCK=$(getconf CLK_TCK)
echo "access_log.sh: $ROUNDS round(s) x ${DURATION}s, wrk -t1 -c$CONNS keep-alive, server on CPU $SERVER_CPUS, wrk on CPU $WRK_CPUS"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: background busy $(background_busy)"
  # Rotate the order each round.
  order=("${variants[@]:$(( (r - 1) % 3 ))}" "${variants[@]:0:$(( (r - 1) % 3 ))}")
  for v in "${order[@]}"; do
    port=$BASE_PORT
    rm -f "$LOG_FILE"
    # shellcheck disable=SC2046
    start_server "$v" "exec $WS --bind 127.0.0.1:\$PORT $(args_of "$v") $APP" "$port" "$OUT_DIR/logs/r$r-$v.log" || continue
    url="http://127.0.0.1:$port/"
    (( WARMUP > 0 )) && taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$BENCH_DIR/get.lua" "$url" >/dev/null 2>&1
    out="$OUT_DIR/wrk/r$r-$v.txt"
    t0=$(session_ticks "$SRV_SID")
    taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 2s -s "$BENCH_DIR/get.lua" "$url" >"$out" 2>&1
    t1=$(session_ticks "$SRV_SID")
    lines=0; [[ -f "$LOG_FILE" ]] && lines=$(wc -l <"$LOG_FILE")
    stop_server
    rps=$(rps_of "$out")
    requests=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' "$out" | tail -1)
    cpu_us=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" -v n="${requests:-0}" 'BEGIN{ if (n>0) printf "%.2f", (b-a)/h*1e6/n; else print "NA" }')
    printf '  %-9s %10s req/s  %6s server CPU us/request  (%s access-log lines)\n' "$v" "${rps:-NA}" "$cpu_us" "$lines"
    results[$v]+="${rps:-} "
    cpu[$v]+="${cpu_us/NA/} "
  done
done
rm -f "$LOG_FILE"

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "NA"} else if(NR%2){print a[(NR+1)/2]} else {printf "%.1f\n",(a[NR/2]+a[NR/2+1])/2}}'; }
off=$(median <<<"${results[off]:-}")
echo
off_cpu=$(median <<<"${cpu[off]:-}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="NA"||b=="NA"||b==0) print "NA"; else printf "%.3f", a/b }'; }
echo "| access log | keep-alive req/s (median of $ROUNDS) | ratio to off | server CPU µs/request | ratio to off | goal |"
echo "|---|---:|---:|---:|---:|---|"
for v in "${variants[@]}"; do
  m=$(median <<<"${results[$v]:-}")
  c=$(median <<<"${cpu[$v]:-}")
  goal=""; [[ "$v" != off ]] && goal="req/s >= 0.90x off"
  echo "| $v | $m | $(ratio "$m" "$off") | $c | $(ratio "$c" "$off_cpu") | $goal |"
done
echo "(wrk outputs and server logs in $OUT_DIR)"
