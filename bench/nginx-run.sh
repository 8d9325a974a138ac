#!/usr/bin/env bash
# bench/nginx-run.sh [PORT] — run the nginx reference (bench/nginx.conf) in the foreground on
# 127.0.0.1:PORT (default $PORT) under a private prefix in $BENCH_WORK; exec's nginx, so this
# process becomes nginx's master and the benchmark stops it by its session like any server.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${1:-${PORT:?give the port as an argument or in PORT}}"
PREFIX="${NGINX_PREFIX:-${BENCH_WORK:-/tmp/webserver-bench}/nginx-$PORT}"
mkdir -p "$PREFIX"
[[ -s "$PREFIX/64k.bin" ]] || head -c 65536 /dev/urandom >"$PREFIX/64k.bin"
sed -e "s#@PORT@#$PORT#g" -e "s#@PREFIX@#$PREFIX#g" "$BENCH_DIR/nginx.conf" >"$PREFIX/nginx.conf"
exec nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"
