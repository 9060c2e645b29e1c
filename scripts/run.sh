#!/usr/bin/env bash
# The run command: `tarte serve` with its embedded defaults — HTTP/3 over
# QUIC on 127.0.0.1:4433 (udp backend, no root needed), a self-signed
# certificate generated in memory, a built-in page at / and /bytes/N (N
# bytes, up to 1 GiB). Extra arguments go to `tarte serve` (see --help):
#   scripts/run.sh                    # https://127.0.0.1:4433/
#   scripts/run.sh --retry            # validate clients with Retry first
#   scripts/run.sh --root DIR         # static files from DIR
#   scripts/run.sh --workers 2 --pin  # two pinned workers (SO_REUSEPORT)
# Try it from another terminal:
#   cargo run --release -p tarte-h3 --example http3-client -- --no-verify https://127.0.0.1:4433/
# Ctrl-C stops it; --duration S stops it after S seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tarte/target}"
exec cargo run --release -q -p tarte-dataplane --bin tarte -- serve "$@"
