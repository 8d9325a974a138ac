#!/usr/bin/env bash
# Start the nginx anchor for bench/scenarios.sh in the foreground on $PORT (or $1): hello on /,
# a 64 KiB static file on /64k, POST bodies read and discarded. Private prefix under $BENCH_WORK.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${1:-${PORT:?set PORT}}"
PREFIX="${NGINX_PREFIX:-${BENCH_WORK:-/tmp/webserver-bench}/nginx-extra-$PORT}"
mkdir -p "$PREFIX"
[[ -s "$PREFIX/64k.bin" ]] || head -c 65536 /dev/urandom >"$PREFIX/64k.bin"
sed -e "s#@PORT@#$PORT#g" -e "s#@PREFIX@#$PREFIX#g" "$HERE/nginx-extra.conf" >"$PREFIX/nginx.conf"
exec nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log"
