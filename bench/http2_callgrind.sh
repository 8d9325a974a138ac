#!/usr/bin/env bash
# http2_callgrind.sh — instructions per HTTP/2 stream (bench/http2.sh's load, counted instead of
# timed), for webserver's worker or for hyper's server (bench/hyper-hello --http2).
#
# Usage:  bench/http2_callgrind.sh [webserver|hyper] [h2c|tls] [N]     (N streams, default 20000)
# The server runs under `valgrind --tool=callgrind` (webserver: `-w 1 --threads 1 --http2 on` on
# the hello app, the worker traced; hyper: one tokio worker thread); h2load -c 50 -m 10 warms it
# up with 2,000 streams, the counters are zeroed (`vgdb zero`), h2load sends N streams, the counts
# are dumped, and the instructions of every thread of the process, divided by N, are printed.
# Counts do not depend on how busy the machine is, so this compares commits and servers where
# req/s cannot; the dump stays in OUT_DIR for `callgrind_annotate --inclusive=yes`.
# H1=1 loads HTTP/1.1 instead (`h2load --h1 -c 50 -m 1`: keep-alive, ALPN http/1.1 over TLS),
# webserver only: bench/callgrind.sh's client has no TLS, this is the HTTP/1.1 TLS path's count.
# Env: PORT (18994; TLS on PORT+1) BIN (target/release/webserver) APP (target/release/libhello.so:app)
#      HYPER (/tmp/webserver-bench/target/release/hyper-hello, built by bench/http2.sh)
#      OUT_DIR (a fresh /tmp directory) EXTRA (more webserver options) H1 (0)
set -euo pipefail
SERVER="${1:-webserver}" MODE="${2:-h2c}" N="${3:-20000}"
PORT="${PORT:-18994}"
TLSPORT=$((PORT + 1))
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
BIN="${BIN:-$ROOT/target/release/webserver}"
APP="${APP:-$ROOT/target/release/libhello.so:app}"
HYPER="${HYPER:-/tmp/webserver-bench/target/release/hyper-hello}"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/webserver-h2-callgrind.XXXXXX)}"
SUITE=TLS_AES_128_GCM_SHA256
LOAD=(-c 50 -m 10)
[[ "${H1:-0}" == 1 ]] && LOAD=(--h1 -c 50 -m 1)
mkdir -p "$OUT_DIR"
for tool in valgrind vgdb h2load openssl curl; do
  command -v "$tool" >/dev/null || { echo "http2_callgrind.sh: $tool is missing" >&2; exit 2; }
done
bench_certificate "$OUT_DIR"
read -ra EXTRA_ARGS <<<"${EXTRA:-}"
case "$SERVER" in
  webserver) CMD=("$BIN" -w 1 --threads 1 --http2 on -b "127.0.0.1:$PORT" -b "127.0.0.1:$TLSPORT,tls"
               --certfile "$OUT_DIR/cert.pem" --keyfile "$OUT_DIR/key.pem" --ciphers "$SUITE"
               "${EXTRA_ARGS[@]}" "$APP") ;;
  hyper) CMD=(env TOKIO_WORKER_THREADS=1 "$HYPER" --http2 "$PORT" "$TLSPORT" "$OUT_DIR/cert.pem"
               "$OUT_DIR/key.pem" "$SUITE") ;;
  *) echo "http2_callgrind.sh: server is webserver or hyper, not $SERVER" >&2; exit 2 ;;
esac
case "$MODE" in
  h2c) URL="http://127.0.0.1:$PORT/" ;;
  tls) URL="https://127.0.0.1:$TLSPORT/" ;;
  *) echo "http2_callgrind.sh: mode is h2c or tls, not $MODE" >&2; exit 2 ;;
esac
valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT_DIR/callgrind.out.%p" \
  "${CMD[@]}" >"$OUT_DIR/server.log" 2>&1 &
TOP=$!
trap 'kill -TERM "$TOP" 2>/dev/null; wait "$TOP" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -s -o /dev/null --max-time 2 --http2-prior-knowledge "http://127.0.0.1:$PORT/" && break
  sleep 0.2
done
# webserver: its worker (a child of the master); hyper (under `env`, which execs): itself.
TARGET=$(pgrep -P "$TOP" | head -1 || true)
TARGET=${TARGET:-$TOP}
h2load "${LOAD[@]}" -n 2000 "$URL" >/dev/null
vgdb --pid="$TARGET" zero >/dev/null
h2load "${LOAD[@]}" -n "$N" "$URL" >"$OUT_DIR/h2load.txt"
vgdb --pid="$TARGET" dump >/dev/null
grep -q " 0 failed, 0 errored" "$OUT_DIR/h2load.txt" ||
  echo "http2_callgrind.sh: h2load saw failures ($OUT_DIR/h2load.txt)" >&2
sleep 1
DUMP=$(ls -t "$OUT_DIR"/callgrind.out."$TARGET".* 2>/dev/null | head -1 || true)
[[ -n "$DUMP" ]] || { echo "http2_callgrind.sh: no dump (see $OUT_DIR/server.log)" >&2; exit 1; }
IR=$(awk '/^summary:|^totals:/ {print $2; exit}' "$DUMP")
echo "$SERVER $MODE: $IR instructions for $N streams: $((IR / N)) per stream ($DUMP)"
