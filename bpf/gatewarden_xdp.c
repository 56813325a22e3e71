/* SPDX-License-Identifier: GPL-2.0
 *
 * gatewarden_xdp.c: Gatewarden's XDP program.
 *
 * Walking skeleton: parses Ethernet (up to two VLAN tags), IPv4 and IPv6, classifies
 * every packet into an (action, reason) counter and counts packets per source address.
 * Every packet passes; rate limiting grows on this structure.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gatewarden_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct gw_counter);
} gw_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, GW_SOURCES_DEFAULT_ENTRIES);
	__type(key, struct gw_source_key);
	__type(value, struct gw_counter);
} gw_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GW_PORTS_ENTRIES);
	__type(key, __u32);
	__type(value, __u8);
} gw_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_loader_info);
} gw_loader SEC(".maps");

/* 802.1Q and 802.1ad tag as it sits between the MAC addresses and the EtherType. */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* A bounds-checked cursor over the packet. */
struct cursor {
	void *pos;
	void *end;
};

/* The part of a packet the decision needs. */
struct packet_facts {
	struct gw_source_key source;
	__u16 dest_port; /* host order; 0 when the packet has none we can read */
};

#define MAX_VLAN_DEPTH 2

static __always_inline void count(__u32 action, __u32 reason, __u64 bytes)
{
	__u32 index = GW_STATS_INDEX(action, reason);
	struct gw_counter *counter = bpf_map_lookup_elem(&gw_stats, &index);

	if (counter) { /* per-CPU: no other CPU writes this slot */
		counter->packets += 1;
		counter->bytes += bytes;
	}
}

static __always_inline void count_source(const struct gw_source_key *source, __u64 bytes)
{
	struct gw_counter *counter = bpf_map_lookup_elem(&gw_sources, source);

	if (counter) {
		counter->packets += 1;
		counter->bytes += bytes;
	} else {
		struct gw_counter first = { .packets = 1, .bytes = bytes };
		bpf_map_update_elem(&gw_sources, source, &first, BPF_NOEXIST);
	}
}

/* Returns the EtherType after skipping up to two VLAN tags, or 0 if the frame is truncated. */
static __always_inline __u16 parse_ethernet(struct cursor *c)
{
	struct ethhdr *eth = c->pos;
	__u16 proto;

	if ((void *)(eth + 1) > c->end)
		return 0;
	c->pos = eth + 1;
	proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int depth = 0; depth < MAX_VLAN_DEPTH; depth++) {
		struct vlan_tag *tag = c->pos;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(tag + 1) > c->end)
			return 0;
		c->pos = tag + 1;
		proto = bpf_ntohs(tag->encapsulated_proto);
	}
	return proto;
}

/* Reads the destination port of a TCP or UDP header at the cursor; 0 if absent. */
static __always_inline int read_dest_port(struct cursor *c, __u8 l4proto, __u16 *port)
{
	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;

		if ((void *)(tcp + 1) > c->end)
			return -1;
		*port = bpf_ntohs(tcp->dest);
	} else if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = c->pos;

		if ((void *)(udp + 1) > c->end)
			return -1;
		*port = bpf_ntohs(udp->dest);
	}
	return 0;
}

static __always_inline int parse_ipv4(struct cursor *c, struct packet_facts *facts)
{
	struct iphdr *ip = c->pos;
	__u32 header_len;

	if ((void *)(ip + 1) > c->end)
		return -1;
	header_len = ip->ihl * 4;
	if (ip->version != 4 || header_len < sizeof(*ip) || c->pos + header_len > c->end)
		return -1;

	facts->source.addr[10] = 0xff;
	facts->source.addr[11] = 0xff;
	__builtin_memcpy(&facts->source.addr[12], &ip->saddr, 4);

	/* Non-first fragments carry no L4 header: such a packet is judged by its source only. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0;
	c->pos += header_len;
	return read_dest_port(c, ip->protocol, &facts->dest_port);
}

static __always_inline int parse_ipv6(struct cursor *c, struct packet_facts *facts)
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > c->end || ip6->version != 6)
		return -1;
	__builtin_memcpy(facts->source.addr, &ip6->saddr, 16);
	c->pos = ip6 + 1;
	return read_dest_port(c, ip6->nexthdr, &facts->dest_port);
}

SEC("xdp")
int gatewarden_xdp(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	__u64 bytes = c.end - c.pos;
	struct packet_facts facts = {};
	__u16 proto;
	__u8 *protected;
	__u32 port_key;
	int parsed;

	proto = parse_ethernet(&c);
	if (proto == 0) {
		count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);
		return XDP_PASS;
	}
	if (proto == ETH_P_IP)
		parsed = parse_ipv4(&c, &facts);
	else if (proto == ETH_P_IPV6)
		parsed = parse_ipv6(&c, &facts);
	else {
		count(GW_ACTION_PASS, GW_REASON_NOT_IP, bytes);
		return XDP_PASS;
	}
	if (parsed < 0) {
		count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);
		return XDP_PASS;
	}

	count_source(&facts.source, bytes);

	port_key = facts.dest_port;
	protected = bpf_map_lookup_elem(&gw_ports, &port_key);
	if (protected && *protected == GW_PORT_PROTECTED)
		count(GW_ACTION_PASS, GW_REASON_WITHIN_LIMIT, bytes);
	else
		count(GW_ACTION_PASS, GW_REASON_UNPROTECTED, bytes);
	return XDP_PASS;
}
