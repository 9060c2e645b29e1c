#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test tarte:
# native build dependencies (BoringSSL, libxdp/libbpf, DPDK), iproute2 for
# the netns tests, and a Python venv with aioquic for the interop tests.
# Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake git pkg-config libclang-dev clang llvm m4 make
  libelf-dev zlib1g-dev libpcap-dev libdpdk-dev dpdk
  python3 python3-venv python3-pip iproute2 ethtool openssl
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is required (install Rust with rustup)" >&2
  exit 1
fi

# aioquic, the independent QUIC/HTTP/3 implementation the interop tests use.
AIOQUIC_VERSION="1.7.2"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import aioquic" 2>/dev/null; then
  echo "setup: creating .venv with aioquic" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q "aioquic==${AIOQUIC_VERSION}" >/dev/null
fi
