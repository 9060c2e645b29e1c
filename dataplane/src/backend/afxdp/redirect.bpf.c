// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0
// tarte's XDP program: redirect UDP datagrams for the engine's port to the
// AF_XDP socket of the receiving queue; pass everything else (ARP, ND, other
// ports, fragments, IPv6 with extension headers) to the kernel stack.
//
// Self-contained on purpose (no kernel or libbpf headers): built with
// `clang -target bpf -O2 -g` by build.rs; -g gives the BTF that libbpf needs
// for the map definitions below.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

enum { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };
enum { BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_XSKMAP = 17 };

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

// queue id -> AF_XDP socket fd (filled in by userspace per queue).
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} tarte_xsks SEC(".maps");

// [0] = UDP destination port to redirect, in network byte order.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tarte_cfg SEC(".maps");

#define ETH_P_IP_BE 0x0008     /* htons(0x0800) */
#define ETH_P_IPV6_BE 0xdd86   /* htons(0x86dd) */
#define ETH_P_8021Q_BE 0x0081  /* htons(0x8100) */
#define IPPROTO_UDP 17

SEC("xdp")
int tarte_xdp(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u32 key = 0;
	__u32 *port = bpf_map_lookup_elem(&tarte_cfg, &key);
	__u8 *l3 = data + 14;
	__u8 *l4;
	__u16 proto;

	if (!port || l3 > end)
		return XDP_PASS;
	proto = *(__u16 *)(data + 12);
	if (proto == ETH_P_8021Q_BE) {
		if (l3 + 4 > end)
			return XDP_PASS;
		proto = *(__u16 *)(l3 + 2);
		l3 += 4;
	}
	if (proto == ETH_P_IP_BE) {
		if (l3 + 20 > end)
			return XDP_PASS;
		__u32 ihl = (l3[0] & 0x0f) * 4;
		// Fragments go to the kernel: MF set or a non-zero offset.
		if (l3[9] != IPPROTO_UDP || ihl < 20 || (*(__u16 *)(l3 + 6) & 0xff3f))
			return XDP_PASS;
		l4 = l3 + ihl;
	} else if (proto == ETH_P_IPV6_BE) {
		if (l3 + 40 > end || l3[6] != IPPROTO_UDP)
			return XDP_PASS;
		l4 = l3 + 40;
	} else {
		return XDP_PASS;
	}
	if (l4 + 8 > end)
		return XDP_PASS;
	if ((__u32)(*(__u16 *)(l4 + 2)) != *port)
		return XDP_PASS;
	// The low bits of flags are the action when the queue has no socket.
	return bpf_redirect_map(&tarte_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
