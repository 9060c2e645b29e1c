#!/usr/bin/env bash
# tx -> rx packet rate of every dataplane backend over one veth link between
# two namespaces, with the same generator, printed side by side.
#
#   scripts/bench-dataplane.sh [--duration S] [--size N] [--gen udp|afxdp] [--queues N]
#       [--gen-core C] [--rx-core C] [--softirq-core C] [--ring-size N]
#       [--prefill [--prefill-count N]]
#       [--only "udp,afxdp drv,..."]   (comma-separated subset of: udp, afxdp skb, afxdp drv, dpdk)
#
# The generator and the receiver are pinned (taskset) to --gen-core (0) and
# --rx-core (1). Besides Mpps the table shows the receiver's user-space cost
# per datagram (time in non-empty bursts) and, for AF_XDP receivers, the
# kernel's XDP_STATISTICS drop counters (rx_dropped + rx_invalid_descs +
# rx_ring_full, and fill-ring-empty events).
#
# --prefill: the receiver opens its socket/port, then does not poll while the
# generator sends --prefill-count datagrams; then it drains what its rings
# hold and is timed on that drain alone, which separates the receiver's cost
# from the generator's speed (rings hold --ring-size frames; udp socket
# buffers --ring-size x 2 KiB).
#
# --softirq-core C moves the kernel's receive work for namespace B off the
# generator's core: veth delivers on the sending CPU, so without it the
# generator's core also runs B's IP/UDP stack (udp receiver) or its XDP
# program (afxdp/dpdk receivers). With it, RPS steers B's backlog to core C
# and B's NAPI (created when an XDP program is attached) runs threaded,
# pinned to C: generator, kernel receive and receiver each get a core, as
# on a receiving host whose NIC interrupts go to their own core.
#
# TARTE_BIN=path uses a prebuilt `tarte` (built with --features dpdk for the
# dpdk row) instead of building one.
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
gen_core=0
rx_core=1
softirq_core=""
prefill=0
prefill_count=200000
ring=2048
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --gen) gen=$2; shift 2 ;;
        --queues) queues=$2; shift 2 ;;
        --gen-core) gen_core=$2; shift 2 ;;
        --rx-core) rx_core=$2; shift 2 ;;
        --softirq-core) softirq_core=$2; shift 2 ;;
        --ring-size) ring=$2; shift 2 ;;
        --prefill) prefill=1; shift ;;
        --prefill-count) prefill_count=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
features=()
if pkg-config --exists libdpdk 2>/dev/null && [ -f dataplane/src/backend/dpdk.rs ] && [ "${NO_DPDK:-0}" != 1 ]; then
    features=(--features dpdk)
fi
if [ -n "${TARTE_BIN:-}" ]; then
    tarte=$TARTE_BIN
elif cargo build --release -p tarte-dataplane --bin tarte "${features[@]}" >&2; then
    tarte=$CARGO_TARGET_DIR/release/tarte
else
    [ ${#features[@]} -gt 0 ] || exit 1
    echo "build with dpdk failed; benchmarking without it" >&2
    cargo build --release -p tarte-dataplane --bin tarte >&2
    tarte=$CARGO_TARGET_DIR/release/tarte
fi

prefix="tbench$$"
prefix=${prefix:0:12}
cleanup() { scripts/netns.sh down --prefix "$prefix" || true; }
trap cleanup EXIT INT TERM
eval "$(scripts/netns.sh up --prefix "$prefix" --queues "$queues")"

if [ -n "$softirq_core" ]; then
    mask=$(printf '%x' $((1 << softirq_core)))
    ip netns exec "$NS_B" sh -c "for q in /sys/class/net/$IF_B/queues/rx-*; do echo $mask > \$q/rps_cpus; done"
fi
# B's NAPI exists once a receiver attached an XDP program: make it threaded
# and pin its threads (named napi/<dev>-<id>, cut to 15 bytes) to the
# softirq core. Without an XDP program veth has no NAPI and RPS does the job.
pin_napi() {
    [ -n "$softirq_core" ] || return 0
    ip netns exec "$NS_B" sh -c "echo 1 > /sys/class/net/$IF_B/threaded" 2>/dev/null || return 0
    local comm_prefix="napi/$IF_B"
    comm_prefix=${comm_prefix:0:15}
    local f pid n=0
    for f in /proc/[0-9]*/comm; do
        if [[ "$(cat "$f" 2>/dev/null)" == "$comm_prefix"* ]]; then
            pid=${f#/proc/}; pid=${pid%/comm}
            taskset -pc "$softirq_core" "$pid" >/dev/null 2>&1 && n=$((n + 1))
        fi
    done
    echo "$1: $n NAPI thread(s) of $IF_B pinned to cpu $softirq_core" >&2
}

backends=(udp "afxdp skb" "afxdp drv")
if "$tarte" bench rx --help | grep -q -- --dpdk-args; then
    backends+=("dpdk")
fi

gen_args=(--backend "$gen" --bind "$IP_A:40000" --dst "$IP_B:4433" --size "$size" --queues "$queues" --json)
if [ "$prefill" = 1 ]; then
    gen_args+=(--count "$prefill_count" --duration "$duration")
else
    gen_args+=(--duration "$duration")
fi
if [ "$gen" = afxdp ]; then gen_args+=(--interface "$IF_A" --xdp-mode drv); fi
# The udp generator uses GSO: the fastest kernel sender here (veth segments
# it); the afxdp generator (drv mode) sends queue q on veth tx queue q, so
# with --queues N it feeds every rx queue of B, while udp is one flow (one
# queue, one SO_REUSEPORT socket).

json_field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$2" | head -1; }

if [ -n "${only:-}" ]; then
    IFS=',' read -r -a backends <<<"$only"
fi

results=()
for b in "${backends[@]}"; do
    set -- $b
    rx_args=(--backend "$1" --bind "$IP_B:4433" --queues "$queues" --ring-size "$ring" --json)
    if [ "$prefill" = 1 ]; then
        rx_args+=(--prefill 2.5 --duration "$((duration + 6))")
    else
        rx_args+=(--duration "$((duration + 3))")
    fi
    case "$1" in
        afxdp) rx_args+=(--interface "$IF_B" --xdp-mode "$2") ;;
        dpdk)
            rx_args+=(--interface "$IF_B")
            # The af_xdp PMD takes one queue on veth (no combined channels).
            if [ "$queues" -gt 1 ]; then rx_args+=(--dpdk-pmd af-packet); b="dpdk afpkt"; fi ;;
    esac
    out=$(mktemp)
    ip netns exec "$NS_B" taskset -c "$rx_core" "$tarte" bench rx "${rx_args[@]}" >"$out" 2>/dev/null &
    rx_pid=$!
    sleep 1.5 # let the receiver attach its XDP program / bind
    pin_napi "$b"
    tx_json=$(ip netns exec "$NS_A" taskset -c "$gen_core" "$tarte" bench tx "${gen_args[@]}" 2>/dev/null || echo '{}')
    wait "$rx_pid" || echo "receiver $b failed" >&2
    rx_json=$(cat "$out"); rm -f "$out"
    xdrops=$(json_field xdp_rx_drops "$rx_json")
    xfill=$(json_field xdp_rx_fill_ring_empty_descs "$rx_json")
    xfull=$(json_field xdp_rx_ring_full "$rx_json")
    results+=("$b|$(json_field mpps "$tx_json")|$(json_field packets "$tx_json")|$(json_field mpps "$rx_json")|$(json_field packets "$rx_json")|$(json_field drops "$rx_json")|$(json_field rx_busy_ns_per_packet "$rx_json")|${xdrops:--}|${xfull:--}|${xfill:--}")
    sleep 0.5 # queues are EBUSY for ~150 ms after a socket closes
done

echo
what="tx -> rx"
kernel_rx=${softirq_core:-"$gen_core (the sender's)"}
[ "$prefill" = 1 ] && what="prefill ($prefill_count sent, then drained)"
echo "$what over veth ($NS_A -> $NS_B), generator: $gen on cpu $gen_core, receiver on cpu $rx_core, kernel rx on cpu $kernel_rx, payload $size B, ${duration}s, $queues queue(s), ring $ring"
printf '%-10s %9s %10s %9s %10s %6s %8s %9s %8s %9s\n' backend "gen Mpps" "gen pkts" "rx Mpps" "rx pkts" drops "rx ns/p" "xdp drop" "ringfull" "fillempty"
udp_rx=""
for r in "${results[@]}"; do
    IFS='|' read -r name txm txp rxm pk dr ns xd xr xf <<<"$r"
    printf '%-10s %9.3f %10s %9.3f %10s %6s %8.1f %9s %8s %9s\n' "$name" "${txm:-0}" "${txp:-0}" "${rxm:-0}" "${pk:-0}" "${dr:-0}" "${ns:-0}" "$xd" "$xr" "$xf"
    [ "$name" = udp ] && udp_rx=${rxm:-0}
done
if [ -n "$udp_rx" ]; then
    for r in "${results[@]}"; do
        IFS='|' read -r name txm txp rxm pk dr ns xd xr xf <<<"$r"
        [ "$name" = udp ] && continue
        awk -v n="$name" -v a="${rxm:-0}" -v u="$udp_rx" 'BEGIN { if (u > 0) printf "%-10s rx = %.2fx udp\n", n, a / u }'
    done
fi
