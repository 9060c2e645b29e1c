#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test of the
# workspace (unit, integration, RFC vectors, netns/veth dataplane tests,
# aioquic interop) with every feature, DPDK included. Needs root for the
# netns, AF_XDP and DPDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Keep cargo's output outside the clone so that a new clone reuses the
# ~3 minute BoringSSL build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tarte/target}"
export LIBXDP_SKIP_DISPATCHER=1
export TARTE_AIOQUIC_PYTHON="${TARTE_AIOQUIC_PYTHON:-$PWD/.venv/bin/python}"
cargo test --workspace --all-features --no-fail-fast "$@"
