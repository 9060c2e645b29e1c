#!/usr/bin/env bash
# tx -> rx packet rate of every dataplane backend over one veth link between
# two namespaces, with the same generator, printed side by side.
#
#   scripts/bench-dataplane.sh [--duration S] [--size N] [--gen udp|afxdp] [--queues N]
#
# Needs root (namespaces, XDP). Builds the release binary (with feature dpdk
# when libdpdk is installed), brings the link up with scripts/netns.sh, runs
# each receiver in namespace B while the generator runs in A for a bounded
# time, and tears everything down on exit (trap), also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5
size=64
gen=udp
queues=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --gen) gen=$2; shift 2 ;;
        --queues) queues=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
features=()
if pkg-config --exists libdpdk 2>/dev/null && [ -f dataplane/src/backend/dpdk.rs ] && [ "${NO_DPDK:-0}" != 1 ]; then
    features=(--features dpdk)
fi
if ! cargo build --release -p tarte-dataplane --bin tarte "${features[@]}" >&2; then
    [ ${#features[@]} -gt 0 ] || exit 1
    echo "build with dpdk failed; benchmarking without it" >&2
    features=()
    cargo build --release -p tarte-dataplane --bin tarte >&2
fi
tarte=$CARGO_TARGET_DIR/release/tarte

prefix="tbench$$"
prefix=${prefix:0:12}
cleanup() { scripts/netns.sh down --prefix "$prefix" || true; }
trap cleanup EXIT INT TERM
eval "$(scripts/netns.sh up --prefix "$prefix" --queues "$queues")"

backends=(udp "afxdp skb" "afxdp drv")
if "$tarte" bench rx --help | grep -q -- --dpdk-args; then
    backends+=("dpdk")
fi

gen_args=(--backend "$gen" --bind "$IP_A:40000" --dst "$IP_B:4433" --size "$size" --duration "$duration" --queues "$queues" --json)
if [ "$gen" = afxdp ]; then gen_args+=(--interface "$IF_A" --xdp-mode skb); fi
# The udp generator uses GSO: the fastest sender here (veth segments it).

json_field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$2"; }

results=()
for b in "${backends[@]}"; do
    set -- $b
    rx_args=(--backend "$1" --bind "$IP_B:4433" --duration "$((duration + 3))" --queues "$queues" --json)
    case "$1" in
        afxdp) rx_args+=(--interface "$IF_B" --xdp-mode "$2") ;;
        dpdk) rx_args+=(--interface "$IF_B") ;;
    esac
    out=$(mktemp)
    ip netns exec "$NS_B" "$tarte" bench rx "${rx_args[@]}" >"$out" 2>/dev/null &
    rx_pid=$!
    sleep 1.5 # let the receiver attach its XDP program / bind
    tx_json=$(ip netns exec "$NS_A" "$tarte" bench tx "${gen_args[@]}" 2>/dev/null || echo '{}')
    wait "$rx_pid" || echo "receiver $b failed" >&2
    rx_json=$(cat "$out"); rm -f "$out"
    results+=("$b|$(json_field mpps "$tx_json")|$(json_field mpps "$rx_json")|$(json_field packets "$rx_json")|$(json_field drops "$rx_json")")
    sleep 0.5 # queues are EBUSY for ~150 ms after a socket closes
done

echo
echo "tx -> rx over veth ($prefix-a -> $prefix-b), generator: $gen, payload $size B, ${duration}s, $queues queue(s)"
printf '%-10s %12s %12s %12s %8s\n' backend "gen Mpps" "rx Mpps" "rx packets" drops
udp_rx=""
for r in "${results[@]}"; do
    IFS='|' read -r name txm rxm pk dr <<<"$r"
    printf '%-10s %12.3f %12.3f %12s %8s\n' "$name" "${txm:-0}" "${rxm:-0}" "${pk:-0}" "${dr:-0}"
    [ "$name" = udp ] && udp_rx=${rxm:-0}
done
if [ -n "$udp_rx" ]; then
    for r in "${results[@]}"; do
        IFS='|' read -r name txm rxm pk dr <<<"$r"
        [ "$name" = udp ] && continue
        awk -v n="$name" -v a="${rxm:-0}" -v u="$udp_rx" 'BEGIN { if (u > 0) printf "%-10s rx = %.2fx udp\n", n, a / u }'
    done
fi
