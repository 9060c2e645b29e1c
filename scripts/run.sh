#!/usr/bin/env bash
# The run command: serves QUIC (hq-interop, ALPN "hq-interop") on loopback
# with a self-signed certificate generated on first use and a small demo
# document root. Extra arguments go to the server (see --help).
#   scripts/run.sh                 # https://127.0.0.1:4433/index.html
#   scripts/run.sh --retry         # validate clients with Retry first
# Try it from another terminal:
#   cargo run --release -p tarte --example client -- --no-verify https://127.0.0.1:4433/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tarte/target}"
state="${TARTE_RUN_DIR:-$HOME/.cache/tarte/run}"
mkdir -p "$state/www"
if [ ! -f "$state/cert.pem" ] || [ ! -f "$state/key.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$state/key.pem" -out "$state/cert.pem" -days 365 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
fi
if [ ! -f "$state/www/index.html" ]; then
  printf '<!doctype html><title>tarte</title><p>Hello from tarte over QUIC.</p>\n' > "$state/www/index.html"
  head -c 10485760 /dev/urandom > "$state/www/10mb.bin"
fi
exec cargo run --release -q -p tarte --example server -- \
  --listen 127.0.0.1:4433 --cert "$state/cert.pem" --key "$state/key.pem" --root "$state/www" "$@"
