#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for dataplane tests/benches.
#
#   scripts/netns.sh up   [--queues N] [--prefix NAME]
#   scripts/netns.sh down [--prefix NAME]
#   scripts/netns.sh env  [--prefix NAME]   # prints the names/addresses as shell vars
#
# Both veth ends live inside the namespaces (nothing in the root namespace,
# no route there), addresses from 198.18.0.0/15 (RFC 2544 benchmarking),
# static neighbour entries both ways, optional multi-queue veth.
set -euo pipefail

cmd=${1:-}
shift || true
queues=1
prefix=tarte
while [ $# -gt 0 ]; do
    case "$1" in
        --queues) queues=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case "$prefix" in *[!a-zA-Z0-9_-]*|"") echo "bad prefix" >&2; exit 2 ;; esac
[ ${#prefix} -le 12 ] || { echo "prefix too long (max 12: interface names are ${prefix}-a/-b)" >&2; exit 2; }

NS_A="${prefix}-a"
NS_B="${prefix}-b"
IF_A="${prefix}-a"
IF_B="${prefix}-b"
IP_A=198.18.0.1
IP_B=198.18.0.2
MAC_A=02:74:61:00:00:01
MAC_B=02:74:61:00:00:02

show_env() {
    cat <<EOV
NS_A=$NS_A
NS_B=$NS_B
IF_A=$IF_A
IF_B=$IF_B
IP_A=$IP_A
IP_B=$IP_B
MAC_A=$MAC_A
MAC_B=$MAC_B
EOV
}

down() {
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
}

up() {
    down
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    # Create the pair inside A with its peer directly in B: it never
    # exists in the root namespace.
    ip -n "$NS_A" link add "$IF_A" address "$MAC_A" numtxqueues "$queues" numrxqueues "$queues" \
        type veth peer name "$IF_B" address "$MAC_B" numtxqueues "$queues" numrxqueues "$queues" \
        netns "$NS_B"
    for side in A B; do
        ns_var=NS_$side if_var=IF_$side ip_var=IP_$side
        ns=${!ns_var} ifc=${!if_var} ipa=${!ip_var}
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$ipa/30" dev "$ifc"
        ip -n "$ns" link set "$ifc" up
        # veth would pass frames from kernel sockets with only a partial UDP
        # checksum (CHECKSUM_PARTIAL); frame backends verify the real one.
        ip netns exec "$ns" ethtool -K "$ifc" tx off >/dev/null
    done
    ip -n "$NS_A" neigh replace "$IP_B" lladdr "$MAC_B" dev "$IF_A" nud permanent
    ip -n "$NS_B" neigh replace "$IP_A" lladdr "$MAC_A" dev "$IF_B" nud permanent
    show_env
}

case "$cmd" in
    up) up ;;
    down) down ;;
    env) show_env ;;
    *) echo "usage: $0 up|down|env [--queues N] [--prefix NAME]" >&2; exit 2 ;;
esac
