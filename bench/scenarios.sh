#!/usr/bin/env bash
# scenarios.sh — wrk scenarios against several servers, interleaved, with the method below.
# bench/run.sh runs it twice: the comparison (keepalive and close, on hyper, nginx and webserver)
# and the larger scenarios (pipelined, 64 KiB response, 1 MiB POST).
#
# Usage:  scenarios.sh 'NAME|GROUP|SCEN:PATH[,SCEN:PATH...]|CMD' ...
#   NAME   unique label of this server start (e.g. webserver-echo)
#   GROUP  the column it lands in in the final table (webserver, webserver-w2, hyper, nginx)
#   SCEN   one of: keepalive (GET PATH on -c$CONNS kept-alive connections, bench/get.lua),
#          close (the same with `Connection: close`: a new TCP connection per request),
#          pipeline16 (GET PATH, 16 requests pipelined per write, bench/pipeline.lua),
#          body64k (GET PATH returning ~64 KiB, bench/get.lua), post1m (POST 1 MiB to PATH,
#          bench/post.lua)
#   CMD    starts ONE server in the foreground on 127.0.0.1:$PORT (PORT is exported per start)
#
# Method: server pinned to CPU $SERVER_CPUS (1), wrk to $WRK_CPUS (0), server in its own session
# (setsid) so its CPU is summed over the session and it is stopped by session id; per start:
# wait for the port, WARMUP s of the entry's first scenario (discarded), then each scenario for
# DURATION s; ROUNDS rounds with the order of entries rotated each round and a fresh start per
# round; before each round the cores' busy share without our load is measured and a warning is
# written to $OUT_DIR/meta.txt if another process is using them. Medians over rounds are
# computed by summary.py.  keepalive, close and pipeline16 use -c$CONNS (50); body64k and post1m
# use -c$LARGE_CONNS (16).
#
# Env: ROUNDS (3) DURATION (5) WARMUP (1) CONNS (50) LARGE_CONNS (16) SERVER_CPUS (1) WRK_CPUS (0)
#      BASE_PORT (18300) OUT_DIR START_TIMEOUT (20) PIPELINE_DEPTH (16) BUSY_WARN_PCT (10)
# Output: $OUT_DIR/scenarios.tsv (one row per measured run), $OUT_DIR/meta.txt (settings and
#         background load per round), wrk outputs in $OUT_DIR/wrk/, server logs in
#         $OUT_DIR/logs/.  Only 127.0.0.1 is contacted; every wrk run is bounded.
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BENCH_DIR
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
LARGE_CONNS="${LARGE_CONNS:-16}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BASE_PORT="${BASE_PORT:-18300}"
START_TIMEOUT="${START_TIMEOUT:-20}"
BUSY_WARN_PCT="${BUSY_WARN_PCT:-10}"
export PIPELINE_DEPTH="${PIPELINE_DEPTH:-16}"
OUT_DIR="${OUT_DIR:-${BENCH_WORK:-/tmp/webserver-bench}/scen-$(date +%Y%m%d-%H%M%S)}"

(( $# >= 1 )) || { sed -n '2,34p' "$0" >&2; exit 2; }
for tool in wrk taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "scenarios.sh: missing $tool" >&2; exit 2; }
done

ENTRIES=("$@")
N=${#ENTRIES[@]}
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/wrk"
RES="$OUT_DIR/scenarios.tsv"
printf 'round\tname\tgroup\tscenario\trps\tbytes_per_s\tp50_us\tp99_us\tmax_us\trequests\terrors\tsrv_cpu_s\twall_s\n' >"$RES"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
trap 'stop_server; exit 130' INT TERM

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

run_wrk() {  # scenario path seconds port outfile
  local scen=$1 path=$2 dur=$3 port=$4 out=$5 script conns
  local -a extra=()
  case "$scen" in
    keepalive)  script=get.lua;      conns=$CONNS ;;
    close)      script=get.lua;      conns=$CONNS; extra=(-H "Connection: close") ;;
    pipeline16) script=pipeline.lua; conns=$CONNS ;;
    body64k)    script=get.lua;      conns=$LARGE_CONNS ;;
    post1m)     script=post.lua;     conns=$LARGE_CONNS ;;
    *) echo "scenarios.sh: unknown scenario $scen" >&2; return 1 ;;
  esac
  local url="http://127.0.0.1:$port$path"
  local TIMEFORMAT='%R %U %S'
  { time PIPELINE_PATH="$path" POST_PATH="$path" taskset -c "$WRK_CPUS" \
      wrk -t1 -c"$conns" -d"${dur}s" --timeout 2s -s "$BENCH_DIR/$script" "${extra[@]}" "$url" >"$out" 2>&1 ; } 2>"$out.time"
}

measure() {  # round name group scenario path port
  local r=$1 name=$2 group=$3 scen=$4 path=$5 port=$6
  local out="$OUT_DIR/wrk/r${r}-${name}-${scen}.txt" t0 t1
  t0=$(session_ticks "$SRV_SID")
  run_wrk "$scen" "$path" "$DURATION" "$port" "$out"
  t1=$(session_ticks "$SRV_SID")
  local line; line=$(grep '^RESULT' "$out" | tail -1)
  if [[ -z "$line" ]]; then
    echo "  [$name/$scen r$r] wrk produced no result; see $out" >&2
    printf '%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n' "$r" "$name" "$group" "$scen" >>"$RES"
    return
  fi
  local wall; read -r wall _ <"$out.time"
  local errs=$(( $(field err_connect "$line") + $(field err_read "$line") + $(field err_write "$line") + $(field err_status "$line") + $(field err_timeout "$line") ))
  local srv_cpu; srv_cpu=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/h}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$group" "$scen" \
    "$(field rps "$line")" "$(field bytes_per_s "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")" \
    "$(field max_us "$line")" "$(field requests "$line")" "$errs" "$srv_cpu" "$wall" >>"$RES"
  printf '  r%s %-20s %-10s rps=%-10s MB/s(rx)=%-8s p50=%sus p99=%sus err=%s srvCPU=%ss\n' "$r" "$name" "$scen" \
    "$(field rps "$line")" "$(awk -v b="$(field bytes_per_s "$line")" 'BEGIN{printf "%.0f", b/1e6}')" \
    "$(field p50_us "$line")" "$(field p99_us "$line")" "$errs" "$srv_cpu"
}

{
  echo "scenarios.sh: ROUNDS=$ROUNDS DURATION=${DURATION}s WARMUP=${WARMUP}s CONNS=$CONNS LARGE_CONNS=$LARGE_CONNS PIPELINE_DEPTH=$PIPELINE_DEPTH out=$OUT_DIR"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  for e in "${ENTRIES[@]}"; do echo "server: $e"; done
} | tee "$OUT_DIR/meta.txt"
T_START=$SECONDS
for (( r=1; r<=ROUNDS; r++ )); do
  busy=$(background_busy)
  echo "== round $r/$ROUNDS (cores busy without our load: $busy %)" | tee -a "$OUT_DIR/meta.txt"
  if busy_over "$busy" "$BUSY_WARN_PCT"; then
    echo "scenarios.sh: WARNING: another process keeps the cores busy ($busy %); rerun on a quiet machine" \
      | tee -a "$OUT_DIR/meta.txt" >&2
  fi
  for (( k=0; k<N; k++ )); do
    i=$(( (k + r - 1) % N ))
    IFS='|' read -r name group scens cmd <<<"${ENTRIES[$i]}"
    port=$(( BASE_PORT + (r - 1) * N + i ))
    if ! start_server "$name" "$cmd" "$port" "$OUT_DIR/logs/r${r}-${name}.log"; then
      IFS=',' read -ra SPS <<<"$scens"
      for sp in "${SPS[@]}"; do
        printf '%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n' "$r" "$name" "$group" "${sp%%:*}" >>"$RES"
      done
      continue
    fi
    IFS=',' read -ra SPS <<<"$scens"
    first=${SPS[0]}
    (( WARMUP > 0 )) && run_wrk "${first%%:*}" "${first#*:}" "$WARMUP" "$port" "$OUT_DIR/wrk/r${r}-${name}-warmup.txt"
    for sp in "${SPS[@]}"; do
      measure "$r" "$name" "$group" "${sp%%:*}" "${sp#*:}" "$port"
    done
    stop_server
  done
done
echo "scenarios total time: $(( SECONDS - T_START ))s; raw rows in $RES"
