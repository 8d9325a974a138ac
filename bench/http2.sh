#!/usr/bin/env bash
# bench/http2.sh — webserver's HTTP/2 (issue 22) beside nginx's (Debian's /usr/sbin/nginx) and
# hyper's (bench/hyper-hello --http2: hyper 1.x's HTTP/2 server, rustls for TLS), in one run,
# printed as ratios webserver / nginx and webserver / hyper:
#
#   h2c req/s       h2load -c 50 -m 10 (50 connections, 10 concurrent streams each), prior
#                   knowledge, GET / of the hello app (nginx: the same 14-byte greeting)
#   h2 (TLS) req/s  the same over TLS 1.3 (TLS_AES_128_GCM_SHA256, X25519, ECDSA P-256, one
#                   certificate made here for both), ALPN h2
#   and each also per server CPU-second, the steadier figure on a busy machine.
#
#     bench/http2.sh                  # 2 rounds of 5 s per measure, ~1 min after the build
#     ROUNDS=1 DURATION=2 bench/http2.sh
#
# Method as bench/tls.sh: each server pinned to CPU 1 (webserver: one worker, --threads 1 from the
# affinity mask, plus its HTTP/2 thread; nginx: one worker process; hyper: one tokio worker
# thread, from the affinity mask), h2load to CPU 0; each server started fresh per round, the order
# rotating; medians over rounds. Target (issue 22): >= 1.0x nginx and >= 1.0x hyper.
# Only 127.0.0.1 is contacted; every run is bounded; servers are stopped by their session id.
# Env: ROUNDS (2), DURATION (5), PORT (18480; TLS on PORT+1), SKIP_BUILD=1, BENCH_WORK
# (/tmp/webserver-bench). Needs h2load (apt-get install nghttp2-client), nginx, openssl, curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export BENCH_WORK="${BENCH_WORK:-/tmp/webserver-bench}"
ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-5}" PORT="${PORT:-18480}"
TLSPORT=$((PORT + 1))
SERVER_CPUS=1 CLIENT_CPUS=0 START_TIMEOUT=15
SUITE=TLS_AES_128_GCM_SHA256
HZ=$(getconf CLK_TCK)
RUN="$BENCH_WORK/http2-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"

for tool in h2load nginx openssl curl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
    echo "bench/http2.sh: $tool is missing (apt-get install ${tool/h2load/nghttp2-client})" >&2; exit 1; }
done
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
HYPER="$BENCH_WORK/target/release/hyper-hello"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p webserver -p hello
  CARGO_TARGET_DIR="$BENCH_WORK/target" cargo build --release --locked \
    --manifest-path "$ROOT/bench/hyper-hello/Cargo.toml"
fi
[[ -x "$HYPER" ]] || { echo "bench/http2.sh: $HYPER is missing (run without SKIP_BUILD=1)" >&2; exit 1; }

bench_certificate "$RUN"

PREFIX="$RUN/nginx"
mkdir -p "$PREFIX"
sed -e "s#@PORT@#$PORT#g" -e "s#@TLSPORT@#$TLSPORT#g" -e "s#@PREFIX@#$PREFIX#g" \
  -e "s#@CERT@#$RUN/cert.pem#g" -e "s#@KEY@#$RUN/key.pem#g" \
  "$ROOT/bench/nginx-h2.conf" >"$PREFIX/nginx.conf"

declare -A CMD
CMD[webserver]="exec $ROOT/target/release/webserver --http2 on --bind 127.0.0.1:$PORT --bind 127.0.0.1:$TLSPORT,tls --certfile $RUN/cert.pem --keyfile $RUN/key.pem --ciphers $SUITE $ROOT/target/release/libhello.so:app"
CMD[nginx]="exec $NGINX_BIN -p $PREFIX -c $PREFIX/nginx.conf -e $PREFIX/error.log"
CMD[hyper]="exec $HYPER --http2 $PORT $TLSPORT $RUN/cert.pem $RUN/key.pem $SUITE"
SERVERS=(webserver nginx hyper)

answers() {
  curl -s -o /dev/null --max-time 1 --http2-prior-knowledge "http://127.0.0.1:$PORT/" &&
    curl -sk -o /dev/null --max-time 1 --http2 "https://127.0.0.1:$TLSPORT/"
}

start() {  # name log
  SERVER_PROBE=answers start_server "$1" "${CMD[$1]}" "$PORT" "$2"
}

# h2load for DURATION seconds (after a 1 s warm-up): "req/s req-per-server-CPU-s".
load() {  # url out
  local before after
  taskset -c "$CLIENT_CPUS" h2load -c 50 -m 10 -D 1 "$1" >/dev/null
  before=$(session_ticks "$SRV_SID")
  taskset -c "$CLIENT_CPUS" h2load -c 50 -m 10 -D "$DURATION" "$1" >"$2"
  after=$(session_ticks "$SRV_SID")
  grep -q "0 failed, 0 errored" "$2" || echo "bench/http2.sh: failures in $2" >&2
  awk -v ticks=$((after - before)) -v hz="$HZ" '
    /^finished in/ { rps = $4 } /^requests:/ { n = $8 }
    END { cpu = ticks / hz; printf "%.0f %.0f\n", rps, (cpu > 0 ? n / cpu : 0) }' "$2"
}

echo "bench/http2.sh: $ROUNDS round(s) of ${DURATION}s, h2load -c 50 -m 10; raw data in $RUN"
for round in $(seq 1 "$ROUNDS"); do
  # Each server first in turn.
  shift_by=$(( (round - 1) % ${#SERVERS[@]} ))
  order=("${SERVERS[@]:shift_by}" "${SERVERS[@]:0:shift_by}")
  for name in "${order[@]}"; do
    start "$name" "$RUN/$name-$round.log"
    read -r h2c h2c_cpu < <(load "http://127.0.0.1:$PORT/" "$RUN/$name-$round-h2c.txt")
    read -r tls tls_cpu < <(load "https://127.0.0.1:$TLSPORT/" "$RUN/$name-$round-tls.txt")
    stop_server || true
    echo "$name $round $h2c $h2c_cpu $tls $tls_cpu" | tee -a "$RUN/results.txt"
  done
done

python3 - "$RUN/results.txt" <<'PY'
import statistics, sys
# name round h2c-req/s h2c-req/cpu-s tls-req/s tls-req/cpu-s
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def median(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
def ratio(ws, peer):
    r = ws / peer if peer else float("nan")
    return f"{r:.2f}x {'ok' if r >= 1.0 else 'MISSED'}"
print()
print("| measure (h2load -c 50 -m 10, GET /) | webserver | nginx | hyper | / nginx | / hyper |")
print("|---|---|---|---|---|---|")
for label, col in (("h2c req/s", 2), ("h2c req per server CPU-s", 3),
                   ("h2 over TLS req/s", 4), ("h2 over TLS req per server CPU-s", 5)):
    ws, ng, hy = (median(name, col) for name in ("webserver", "nginx", "hyper"))
    print(f"| {label} | {ws:,.0f} | {ng:,.0f} | {hy:,.0f} | {ratio(ws, ng)} | {ratio(ws, hy)} |")
print("(target: >= 1.0x each)")
PY
