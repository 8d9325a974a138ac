#!/usr/bin/env bash
# bench/tls.sh — webserver over TLS beside nginx (Debian's /usr/sbin/nginx), same certificate
# (ECDSA P-256, made here with openssl), same protocol, cipher suite and key exchange on both
# (TLS 1.3, TLS_AES_128_GCM_SHA256, X25519: webserver --ciphers, nginx ssl_conf_command), in one
# run, printed as ratios webserver / nginx:
#
#   keep-alive req/s      wrk -t1 -c50 over https (one handshake per connection, then requests);
#                         also per server CPU-second, the steadier figure when the client or a
#                         busy machine, not the server, is what limits req/s
#   new conns / CPU-s     fresh TLS connections (full handshake, GET /, close) made by two
#                         `openssl s_time -new` clients, divided by the server's CPU seconds
#                         (utime+stime of every process of its session, from /proc/PID/stat)
#
#     bench/tls.sh                  # 2 rounds of 5 s per measure, ~1 min
#     ROUNDS=1 DURATION=3 bench/tls.sh
#
# Method as bench/run.sh: each server pinned to CPU 1 (webserver: one worker, --threads 1 from
# the affinity mask; nginx: one worker process), the clients to CPU 0; each server started fresh
# per round, the order alternating; medians over rounds. Targets (issue 12): both ratios >= 0.9.
# Only 127.0.0.1 is contacted; every run is bounded; servers are stopped by their session id.
# Env: ROUNDS (2), DURATION (5), PORT (18443), SKIP_BUILD=1, BENCH_WORK (/tmp/webserver-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-5}" PORT="${PORT:-18443}"
SERVER_CPUS=1 CLIENT_CPUS=0 START_TIMEOUT=15
SUITE=TLS_AES_128_GCM_SHA256
HZ=$(getconf CLK_TCK)
RUN="$BENCH_WORK/tls-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"

for tool in wrk nginx openssl curl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
    echo "bench/tls.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p webserver -p hello
fi

# One certificate for both servers.
bench_certificate "$RUN"

PREFIX="$RUN/nginx"
mkdir -p "$PREFIX"
sed -e "s#@PORT@#$PORT#g" -e "s#@PREFIX@#$PREFIX#g" -e "s#@CERT@#$RUN/cert.pem#g" \
  -e "s#@KEY@#$RUN/key.pem#g" "$ROOT/bench/nginx-tls.conf" >"$PREFIX/nginx.conf"

declare -A CMD
CMD[webserver]="exec $ROOT/target/release/webserver --bind 127.0.0.1:$PORT --certfile $RUN/cert.pem --keyfile $RUN/key.pem --ciphers $SUITE $ROOT/target/release/libhello.so:app"
CMD[nginx]="exec $NGINX_BIN -p $PREFIX -c $PREFIX/nginx.conf -e $PREFIX/error.log"

answers() {
  curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$PORT/"
}

start_tls() {  # name log
  SERVER_PROBE=answers start_server "$1" "${CMD[$1]}" "$PORT" "$2"
}

# Keep-alive: requests/s of wrk over TLS, and requests per server CPU-second.
keepalive() {  # out
  local before after
  taskset -c "$CLIENT_CPUS" wrk -t1 -c50 -d1s "https://127.0.0.1:$PORT/" >/dev/null
  before=$(session_ticks "$SRV_SID")
  taskset -c "$CLIENT_CPUS" wrk -t1 -c50 -d"${DURATION}s" "https://127.0.0.1:$PORT/" >"$1"
  after=$(session_ticks "$SRV_SID")
  awk -v ticks=$((after - before)) -v hz="$HZ" '
    / requests in / { n = $1 } /^Requests\/sec/ { rps = $2 }
    END { cpu = ticks / hz; printf "%s %.0f\n", rps, (cpu > 0 ? n / cpu : 0) }' "$1"
}

# New connections per server CPU-second: two sequential-handshake clients for DURATION seconds.
new_conns() {  # out
  local before after i
  before=$(session_ticks "$SRV_SID")
  for i in 1 2; do
    taskset -c "$CLIENT_CPUS" openssl s_time -connect "127.0.0.1:$PORT" -new -tls1_3 \
      -ciphersuites "$SUITE" -www / -time "$DURATION" >"$1.$i" 2>&1 &
  done
  wait %1 %2 2>/dev/null || true
  wait
  after=$(session_ticks "$SRV_SID")
  awk -v ticks=$((after - before)) -v hz="$HZ" '
    /connections in [0-9.]+ real seconds/ { conns += $1 }
    END { cpu = ticks / hz; printf "%d %.2f %.0f\n", conns, cpu, (cpu > 0 ? conns / cpu : 0) }' \
    "$1.1" "$1.2"
}

echo "bench/tls.sh: $ROUNDS round(s) of ${DURATION}s, TLS 1.3 $SUITE X25519, ECDSA P-256; raw data in $RUN"
for round in $(seq 1 "$ROUNDS"); do
  order="webserver nginx"; (( round % 2 == 0 )) && order="nginx webserver"
  for name in $order; do
    start_tls "$name" "$RUN/$name-$round.log"
    read -r rps rps_cpu < <(keepalive "$RUN/$name-$round-wrk.txt")
    read -r conns cpu per_cpu < <(new_conns "$RUN/$name-$round-stime")
    stop_server || true  # its status is the server's exit status (nginx: 143 on TERM at times)
    echo "$name $round $rps $conns $cpu $per_cpu $rps_cpu" | tee -a "$RUN/results.txt"
  done
done

python3 - "$RUN/results.txt" <<'PY'
import statistics, sys
# name round req/s conns cpu-s conns/cpu-s req/cpu-s
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def median(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
print()
print("| measure | webserver | nginx | ratio | target |")
print("|---|---|---|---|---|")
for label, col in (("keep-alive req/s (wrk -c50)", 2), ("keep-alive req per server CPU-s", 6),
                   ("new TLS conns per server CPU-s", 5)):
    ws, ng = median("webserver", col), median("nginx", col)
    ratio = ws / ng if ng else float("nan")
    print(f"| {label} | {ws:,.0f} | {ng:,.0f} | {ratio:.2f}x | >= 0.9x {'ok' if ratio >= 0.9 else 'MISSED'} |")
PY
