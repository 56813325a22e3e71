/* SPDX-License-Identifier: GPL-2.0
 *
 * Benchmark harness: a spoofed flood inside one BPF_PROG_TEST_RUN.
 *
 * With `repeat`, the kernel runs a program over and over on the same packet buffer, and writes
 * to the packet persist between runs. This program uses that: the TCP sequence number is a packet
 * counter, and every run advances it and writes a new source address derived from it, then
 * tail-calls the program under test (slot 0 of `contender`). The address is a bijective mix of the
 * counter, so N runs give N distinct, well-spread sources, and every contender sees the same ones.
 * Back-to-back packets with warm code and cold per-source state: the shape of a real flood, without
 * a syscall between packets. Its own cost is measured by tail-calling an empty XDP_PASS program.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} contender SEC(".maps");

/* murmur3's finaliser: a bijection on 32 bits, so distinct counters give distinct sources. */
static __always_inline __u32 spread(__u32 x)
{
	x ^= x >> 16;
	x *= 0x85ebca6b;
	x ^= x >> 13;
	x *= 0xc2b2ae35;
	x ^= x >> 16;
	return x;
}

SEC("xdp")
int flood_harness(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1); /* the benchmark's own frame: IHL 5 */
	__u32 counter;

	if ((void *)(tcp + 1) > end)
		return XDP_ABORTED;
	counter = bpf_ntohl(tcp->seq) + 1;
	tcp->seq = bpf_htonl(counter);
	ip->saddr = bpf_htonl(spread(counter));
	bpf_tail_call(ctx, &contender, 0);
	return XDP_ABORTED; /* the slot was empty */
}
