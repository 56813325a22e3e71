/* SPDX-License-Identifier: GPL-2.0
 *
 * Benchmark baseline: the approach of the seed articles, for comparison only.
 * A per-source packet count in a one-second fixed window, IPv4 and TCP to 443 only, a
 * non-atomic read-modify-write of the shared entry, and a drop counter in a second map.
 * It allows up to twice the rate across a window edge and loses updates across CPUs;
 * Gatewarden's program exists because of both.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define WINDOW_NS 1000000000ULL
#define PACKETS_PER_WINDOW 1000

struct window {
	__u64 started_ns;
	__u32 packets;
	__u32 unused;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, __u32);
	__type(value, struct window);
} windows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

SEC("xdp")
int naive_fixed_window(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1); /* assumes IHL 5, as the approach does */
	struct window *current;
	__u64 now;
	__u32 source;

	if ((void *)(tcp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_TCP || tcp->dest != bpf_htons(443))
		return XDP_PASS;

	source = ip->saddr;
	now = bpf_ktime_get_ns();
	current = bpf_map_lookup_elem(&windows, &source);
	if (!current) {
		struct window first = { .started_ns = now, .packets = 1 };

		bpf_map_update_elem(&windows, &source, &first, BPF_ANY);
		return XDP_PASS;
	}
	if (now - current->started_ns > WINDOW_NS) {
		current->started_ns = now;
		current->packets = 1;
		return XDP_PASS;
	}
	current->packets++;
	if (current->packets <= PACKETS_PER_WINDOW)
		return XDP_PASS;

	__u64 *dropped = bpf_map_lookup_elem(&drops, &source);
	if (dropped) {
		__sync_fetch_and_add(dropped, 1);
	} else {
		__u64 one = 1;

		bpf_map_update_elem(&drops, &source, &one, BPF_ANY);
	}
	return XDP_DROP;
}
