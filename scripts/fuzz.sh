#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time and prints how many
# executions it survived.
#   scripts/fuzz.sh TARGET SECONDS
# Targets: engine (packet_header, frame_decode, transport_params,
# conn_recv: whole datagrams into connections, conn_frames: frames past
# packet protection into an established server, conn_zero_rtt: frames in
# 0-RTT packets into a server that accepted 0-RTT, conn_batch: hostile GRO
# buffers into recv_batch), h3 and dataplane (see
# */fuzz/fuzz_targets). Uses RUSTC_BOOTSTRAP because only a stable
# toolchain is available here; cargo-fuzz is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh TARGET SECONDS}"
secs="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
dir=""
for d in engine h3 dataplane; do
  if [ -f "$d/fuzz/fuzz_targets/$target.rs" ]; then dir="$d"; fi
done
[ -n "$dir" ] || { echo "fuzz.sh: no target named $target" >&2; exit 2; }
mkdir -p "$dir/fuzz/corpus/$target"
cd "$dir"
export RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | tee "$log" | grep -E "^(==|SUMMARY|Done|#[0-9]+ +DONE)" || true
status=${PIPESTATUS[0]}
execs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#')
echo "fuzz.sh: $target ran ${secs}s, ${execs:-0} executions, exit $status"
exit "$status"
