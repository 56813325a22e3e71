/* SPDX-License-Identifier: GPL-2.0
 *
 * syncookie_check.c: a test companion, not a benchmark. Judges the ACK of a handshake with the
 * kernel's own SYN cookie check (bpf_tcp_raw_check_syncookie_ipv4/6), the check nf_synproxy makes:
 * XDP_PASS when the ACK returns a valid cookie, XDP_DROP otherwise, XDP_ABORTED for a frame it
 * cannot read (Ethernet, IPv4 without options or IPv6 without extension headers, TCP).
 * The kernel tests send it the ACK a client would answer Gatewarden's SYN-ACK with.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int syncookie_check(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	long verdict;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
			return XDP_ABORTED;
		verdict = bpf_tcp_raw_check_syncookie_ipv4(ip, tcp);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct tcphdr *tcp = (void *)(ip6 + 1);

		if ((void *)(tcp + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_ABORTED;
		verdict = bpf_tcp_raw_check_syncookie_ipv6(ip6, tcp);
	} else {
		return XDP_ABORTED;
	}
	return verdict == 0 ? XDP_PASS : XDP_DROP;
}
