#!/usr/bin/env bash
# bench/setup.sh — what bench/run.sh needs besides the server itself, idempotent:
#   * wrk (the load generator) and nginx (the practical ceiling), from apt when missing
#     (Debian/Ubuntu, as root: `apt-get update` runs only when something must be installed);
#   * bench/hyper-hello (the Rust reference), built `--locked` from crates.io into
#     $BENCH_WORK/target (default /tmp/webserver-bench), so the source tree stays clean.
# Prints where each one is.  Needs: cargo, and apt-get when wrk or nginx is missing.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${BENCH_WORK:-/tmp/webserver-bench}"
mkdir -p "$WORK"

missing=()
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if (( ${#missing[@]} > 0 )); then
  if ! command -v apt-get >/dev/null; then
    echo "setup.sh: ${missing[*]} missing and no apt-get here; install them and rerun" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]} with apt-get"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

CARGO_TARGET_DIR="$WORK/target" cargo build --release --locked \
  --manifest-path "$BENCH_DIR/hyper-hello/Cargo.toml"

echo "setup.sh: wrk=$(command -v wrk) nginx=$(command -v nginx) hyper-hello=$WORK/target/release/hyper-hello"
