#!/usr/bin/env bash
# bench/static.sh — static files (issue 21): webserver's --static beside nginx, same files, same
# method, one table with ratios.
#
#   big   GET of a 1 MiB file over $BIG_CONNS (16) kept-alive connections: payload GB/s (requests
#         × file size, headers not counted) and the server's CPU time per GB sent
#   small GET of a 1 KiB file on $SMALL_CONNS (50) kept-alive connections: requests/s
#
# nginx is tuned as its documentation advises for static files: sendfile on, tcp_nopush on,
# tcp_nodelay on, open_file_cache (max=10000 inactive=60s, valid 60s, errors cached),
# access_log off, keepalive_requests high, worker_processes = $WORKERS like webserver's
# --workers (each worker of both servers may run on all of $SERVER_CPUS). webserver serves
# the same directory with --static /files/=DIR (sendfile for bodies over 16 KiB), access log off.
#
# Method (bench/lib.sh): each server pinned to $SERVER_CPUS in its own session (its CPU time is
# summed over the session, master and workers), wrk pinned to $WRK_CPUS; per round and server: a
# fresh start, $WARMUP s warm-up, then each scenario for $DURATION s; $ROUNDS rounds with the
# server order alternated; medians over rounds. Only 127.0.0.1 is contacted.
#
# Usage:  bench/static.sh            (release build of webserver first: BUILD=0 skips it)
# Env:    ROUNDS (3) DURATION (10) WARMUP (2) WORKERS (1) SERVER_CPUS (1) WRK_CPUS (0)
#         BIG_CONNS (16) SMALL_CONNS (50) BASE_PORT (18500) WS_BIN (target/release/webserver)
#         HELLO (target/release/libhello.so) OUT_DIR BUILD (1)
# Smoke:  BUILD=0 ROUNDS=1 DURATION=2 WARMUP=1 WS_BIN=target/debug/webserver \
#         HELLO=target/debug/libhello.so bench/static.sh
# Needs:  nginx (apt install nginx-light or nginx; only its binary is used, never the service),
#         wrk, taskset, setsid, curl.
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
WORKERS="${WORKERS:-1}"
SERVER_CPUS="${SERVER_CPUS:-1}"
WRK_CPUS="${WRK_CPUS:-0}"
BIG_CONNS="${BIG_CONNS:-16}"
SMALL_CONNS="${SMALL_CONNS:-50}"
BASE_PORT="${BASE_PORT:-18500}"
START_TIMEOUT="${START_TIMEOUT:-20}"
WS_BIN="${WS_BIN:-$ROOT/target/release/webserver}"
HELLO="${HELLO:-$ROOT/target/release/libhello.so}"
BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
OUT_DIR="${OUT_DIR:-$BENCH_WORK/static-$(date +%Y%m%d-%H%M%S)}"

for tool in nginx wrk taskset setsid curl; do
  command -v "$tool" >/dev/null || { echo "static.sh: missing $tool (apt install nginx wrk)" >&2; exit 2; }
done
if [[ "${BUILD:-1}" == 1 ]]; then
  (cd "$ROOT" && cargo build --release -p webserver -p hello) || exit 1
fi
[[ -x "$WS_BIN" && -f "$HELLO" ]] || { echo "static.sh: $WS_BIN or $HELLO missing (build them)" >&2; exit 2; }

# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT_DIR/files" "$OUT_DIR/logs" "$OUT_DIR/wrk"
FILES="$OUT_DIR/files"
head -c 1048576 /dev/urandom >"$FILES/1m.bin"
head -c 1024 /dev/urandom >"$FILES/1k.bin"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

NGINX_PREFIX="$OUT_DIR/nginx"
mkdir -p "$NGINX_PREFIX"
cat >"$NGINX_PREFIX/nginx.conf.in" <<EOF
daemon off;
master_process on;
worker_processes $WORKERS;
pid $NGINX_PREFIX/nginx.pid;
error_log $NGINX_PREFIX/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path $NGINX_PREFIX/client_body;
    proxy_temp_path $NGINX_PREFIX/proxy;
    fastcgi_temp_path $NGINX_PREFIX/fastcgi;
    uwsgi_temp_path $NGINX_PREFIX/uwsgi;
    scgi_temp_path $NGINX_PREFIX/scgi;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:@PORT@ reuseport backlog=4096;
        location /files/ { alias $FILES/; }
        location / { return 200 "ok\n"; }
    }
}
EOF

nginx_cmd() {  # port
  sed "s#@PORT@#$1#" "$NGINX_PREFIX/nginx.conf.in" >"$NGINX_PREFIX/nginx.conf"
  echo "exec nginx -p '$NGINX_PREFIX' -c '$NGINX_PREFIX/nginx.conf' -e '$NGINX_PREFIX/error.log'"
}
ws_cmd() {  # port
  echo "exec '$WS_BIN' --bind 127.0.0.1:$1 --workers $WORKERS --static /files/=$FILES '$HELLO:app'"
}

RES="$OUT_DIR/static.tsv"
printf 'round\tserver\tscenario\trps\tpayload_bytes_per_s\tsrv_cpu_s\twall_s\n' >"$RES"

# One wrk run: scenario name, connections, path, file size; appends a row.
measure() {
  local round=$1 server=$2 scen=$3 conns=$4 path=$5 size=$6 port=$7
  local out="$OUT_DIR/wrk/$round-$server-$scen.txt" t0 t1 c0 c1 rps
  c0=$(session_ticks "$SRV_SID"); t0=$(date +%s.%N)
  taskset -c "$WRK_CPUS" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s \
    "http://127.0.0.1:$port$path" >"$out" 2>&1
  t1=$(date +%s.%N); c1=$(session_ticks "$SRV_SID")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  [[ -n "$rps" ]] || { echo "static.sh: wrk failed against $server (see $out)" >&2; rps=0; }
  if grep -q 'Non-2xx' "$out"; then echo "static.sh: $server answered errors (see $out)" >&2; fi
  awk -v r="$round" -v s="$server" -v sc="$scen" -v rps="$rps" -v size="$size" \
      -v cpu="$(( c1 - c0 ))" -v tck="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
      'BEGIN { printf "%s\t%s\t%s\t%.1f\t%.0f\t%.3f\t%.3f\n", r, s, sc, rps, rps * size, cpu / tck, t1 - t0 }' >>"$RES"
}

run_server() {  # round server port
  local round=$1 server=$2 port=$3 cmd
  if [[ $server == nginx ]]; then cmd=$(nginx_cmd "$port"); else cmd=$(ws_cmd "$port"); fi
  start_server "$server" "$cmd" "$port" "$OUT_DIR/logs/$round-$server.log" || return 1
  curl -sf -o /dev/null "http://127.0.0.1:$port/files/1k.bin" || {
    echo "static.sh: $server does not serve /files/1k.bin" >&2; stop_server; return 1; }
  taskset -c "$WRK_CPUS" wrk -t1 -c"$BIG_CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/files/1m.bin" >/dev/null 2>&1
  measure "$round" "$server" big "$BIG_CONNS" /files/1m.bin 1048576 "$port"
  measure "$round" "$server" small "$SMALL_CONNS" /files/1k.bin 1024 "$port"
  stop_server
}
trap 'stop_server' EXIT

{
  echo "static.sh $(date -u +%FT%TZ) rounds=$ROUNDS duration=${DURATION}s workers=$WORKERS server_cpus=$SERVER_CPUS wrk_cpus=$WRK_CPUS"
  echo "webserver: $WS_BIN; nginx: $(nginx -v 2>&1)"
} | tee "$OUT_DIR/meta.txt"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round: background busy $(background_busy)" | tee -a "$OUT_DIR/meta.txt"
  if (( round % 2 )); then order="webserver nginx"; else order="nginx webserver"; fi
  for server in $order; do
    if [[ $server == nginx ]]; then port=$((BASE_PORT + 1)); else port=$BASE_PORT; fi
    run_server "$round" "$server" "$port"
  done
done

# Medians over rounds, then the ratios webserver / nginx.
awk -F'\t' 'NR > 1 { key = $2 "\t" $3
    rps[key] = rps[key] " " $4; bps[key] = bps[key] " " $5
    cpb[key] = cpb[key] " " ($5 > 0 ? $6 / ($5 * $7 / 1e9) : 0) }
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0 }
  END {
    split("webserver nginx", servers, " ")
    for (s = 1; s <= 2; s++) {
      b = servers[s] "\tbig"; k = servers[s] "\tsmall"
      gbps[s] = median(bps[b]) / 1e9; cpu[s] = median(cpb[b]); small[s] = median(rps[k])
    }
    printf "%-34s %12s %12s %10s %s\n", "", "webserver", "nginx", "ratio", "target"
    printf "%-34s %12.2f %12.2f %9.2fx %s\n", "1 MiB x16 conns: payload GB/s", gbps[1], gbps[2], gbps[2] ? gbps[1] / gbps[2] : 0, ">= 1.0x"
    printf "%-34s %12.3f %12.3f %9.2fx %s\n", "1 MiB x16 conns: server CPU s/GB", cpu[1], cpu[2], cpu[2] ? cpu[1] / cpu[2] : 0, "<= 1.0x"
    printf "%-34s %12.0f %12.0f %9.2fx %s\n", "1 KiB keep-alive: requests/s", small[1], small[2], small[2] ? small[1] / small[2] : 0, ">= 1.0x"
  }' "$RES" | tee "$OUT_DIR/table.txt"
echo "rows: $RES"
