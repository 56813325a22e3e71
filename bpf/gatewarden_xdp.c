/* SPDX-License-Identifier: GPL-2.0
 *
 * gatewarden_xdp.c: Gatewarden's XDP rate limiter.
 *
 * For every packet: parse Ethernet (up to two VLAN tags), IPv4 (honouring IHL) or IPv6
 * (a bounded walk over extension headers), and TCP/UDP destination ports. Then, in order:
 *   1. allowlist (LPM trie)          -> pass, never limited
 *   2. blocklist (LPM trie, expiry)  -> drop while the entry has not expired
 *   3. protected ports only (non-first fragments count: they carry no port to exempt them):
 *      per-source GCRA (/32, /128)   -> drop when over
 *      per-subnet GCRA (/24, /48-/64) -> drop when over
 * Every decision lands in a per-CPU (action, reason) counter.
 *
 * Rate state is one 64-bit word per key (the GCRA theoretical arrival time) updated by
 * compare-and-swap: no lost updates across CPUs and, unlike a fixed window, no double
 * burst at window edges. bpf_spin_lock is not available in LRU maps; CAS needs -mcpu=v3.
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

/* ---- maps ---------------------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct gw_counter);
} gw_stats SEC(".maps");

/* Per-CPU LRU lists (BPF_F_NO_COMMON_LRU): a spoofed flood inserts on every packet, and a
 * shared LRU list would serialise those inserts on one lock. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SOURCES_DEFAULT_ENTRIES);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct gw_addr);
	__type(value, struct gw_bucket);
} gw_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SUBNETS_DEFAULT_ENTRIES);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct gw_addr);
	__type(value, struct gw_bucket);
} gw_subnets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GW_ALLOWLIST_DEFAULT_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gw_lpm_key);
	__type(value, struct gw_allow_entry);
} gw_allowlist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GW_BLOCKLIST_DEFAULT_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gw_lpm_key);
	__type(value, struct gw_block_entry);
} gw_blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config);
} gw_config SEC(".maps");

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

/* ---- parsing ------------------------------------------------------------------------- */

#define MAX_VLAN_DEPTH 2
#define MAX_IPV6_EXTENSIONS 6
#define IPV4_FRAGMENT_OFFSET_MASK 0x1fff
#define IPV6_FRAGMENT_OFFSET_MASK 0xfff8

/* 802.1Q and 802.1ad tag as it sits between the MAC addresses and the EtherType. */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct ipv6_extension {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_fragment {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* A bounds-checked cursor over the packet. */
struct cursor {
	void *pos;
	void *end;
};

enum parse_result {
	PARSED = 0,       /* source known; dest_port set or 0 */
	NOT_IP,
	MALFORMED,
	UNSUPPORTED,
};

/* The part of a packet the decision needs. */
struct packet_facts {
	struct gw_addr source;
	__u16 dest_port;    /* host order; 0 when the packet has none */
	__u8 is_ipv4;
	__u8 is_fragment;   /* non-first fragment: no L4 header, judged as protected traffic */
};

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

/* Reads the destination port of a TCP or UDP header at the cursor; other protocols have none. */
static __always_inline enum parse_result read_dest_port(struct cursor *c, __u8 l4proto, __u16 *port)
{
	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;

		if ((void *)(tcp + 1) > c->end || tcp->doff < 5)
			return MALFORMED;
		*port = bpf_ntohs(tcp->dest);
	} else if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = c->pos;

		if ((void *)(udp + 1) > c->end)
			return MALFORMED;
		*port = bpf_ntohs(udp->dest);
	}
	return PARSED;
}

static __always_inline enum parse_result parse_ipv4(struct cursor *c, struct packet_facts *facts)
{
	struct iphdr *ip = c->pos;
	__u32 header_len;

	if ((void *)(ip + 1) > c->end)
		return MALFORMED;
	header_len = ip->ihl * 4;
	if (ip->version != 4 || header_len < sizeof(*ip) || c->pos + header_len > c->end)
		return MALFORMED;

	facts->is_ipv4 = 1;
	facts->source.bytes[10] = 0xff;
	facts->source.bytes[11] = 0xff;
	__builtin_memcpy(&facts->source.bytes[12], &ip->saddr, 4);

	if (ip->frag_off & bpf_htons(IPV4_FRAGMENT_OFFSET_MASK)) {
		facts->is_fragment = 1;
		return PARSED;
	}
	c->pos += header_len;
	return read_dest_port(c, ip->protocol, &facts->dest_port);
}

static __always_inline enum parse_result parse_ipv6(struct cursor *c, struct packet_facts *facts)
{
	struct ipv6hdr *ip6 = c->pos;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > c->end || ip6->version != 6)
		return MALFORMED;
	__builtin_memcpy(facts->source.bytes, &ip6->saddr, 16);
	c->pos = ip6 + 1;
	nexthdr = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXTENSIONS; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			struct ipv6_extension *ext = c->pos;

			if ((void *)(ext + 1) > c->end)
				return MALFORMED;
			nexthdr = ext->nexthdr;
			c->pos += (ext->hdrlen + 1) * 8;
			break;
		}
		case IPPROTO_AH: {
			struct ipv6_extension *ext = c->pos;

			if ((void *)(ext + 1) > c->end)
				return MALFORMED;
			nexthdr = ext->nexthdr;
			c->pos += (ext->hdrlen + 2) * 4;
			break;
		}
		case IPPROTO_FRAGMENT: {
			struct ipv6_fragment *frag = c->pos;

			if ((void *)(frag + 1) > c->end)
				return MALFORMED;
			if (frag->frag_off & bpf_htons(IPV6_FRAGMENT_OFFSET_MASK)) {
				facts->is_fragment = 1;
				return PARSED;
			}
			nexthdr = frag->nexthdr;
			c->pos = frag + 1;
			break;
		}
		case IPPROTO_ESP:
			return UNSUPPORTED;
		default:
			return read_dest_port(c, nexthdr, &facts->dest_port);
		}
	}
	return UNSUPPORTED;
}

/* ---- decisions ----------------------------------------------------------------------- */

static __always_inline int count(__u32 action, __u32 reason, __u64 bytes)
{
	__u32 index = GW_STATS_INDEX(action, reason);
	struct gw_counter *counter = bpf_map_lookup_elem(&gw_stats, &index);

	if (counter) { /* per-CPU: no other CPU writes this slot */
		counter->packets += 1;
		counter->bytes += bytes;
	}
	return action == GW_ACTION_DROP ? XDP_DROP : XDP_PASS;
}

static __always_inline void lpm_key_from(struct gw_lpm_key *key, const struct gw_addr *addr)
{
	key->prefixlen = 128;
	__builtin_memcpy(key->addr, addr->bytes, 16);
}

/* Whether the blocklist holds an unexpired entry covering the source. */
static __always_inline int is_blocked(const struct gw_lpm_key *key)
{
	struct gw_block_entry *entry = bpf_map_lookup_elem(&gw_blocklist, key);

	if (!entry)
		return 0;
	return entry->expires_boot_ns == 0 || entry->expires_boot_ns > bpf_ktime_get_boot_ns();
}

/* GCRA: a packet conforms if, after it, the theoretical arrival time is no further ahead of
 * now than the tolerance. Returns 1 to pass, 0 to drop. */
static __always_inline int gcra_conforms(struct gw_bucket *bucket, __u64 now, __u64 interval, __u64 tolerance)
{
#pragma unroll
	for (int attempt = 0; attempt < 4; attempt++) {
		__u64 tat = *(volatile __u64 *)&bucket->tat_ns;
		__u64 next = (tat > now ? tat : now) + interval;

		if (next - now > tolerance)
			return 0;
		if (__sync_val_compare_and_swap(&bucket->tat_ns, tat, next) == tat)
			return 1;
	}
	/* Four lost races in a row means this key is hammered from every CPU at once: a flood. */
	return 0;
}

/* Charges one packet to the bucket of `key`, creating it on first sight. Returns 1 to pass. */
static __always_inline int charge(void *map, const struct gw_addr *key, __u64 now, __u64 interval, __u64 tolerance)
{
	struct gw_bucket *bucket;

	if (interval == 0)
		return 1;
	bucket = bpf_map_lookup_elem(map, key);
	if (!bucket) {
		/* First packet of this key: it uses one interval of the tolerance. */
		struct gw_bucket fresh = { .tat_ns = now + interval };

		if (bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST) == 0)
			return interval <= tolerance;
		/* Another CPU created it meanwhile: charge the one that exists. */
		bucket = bpf_map_lookup_elem(map, key);
		if (!bucket)
			return 1; /* could not track: fail open, the stack still has nftables */
	}
	if (gcra_conforms(bucket, now, interval, tolerance))
		return 1;
	__sync_fetch_and_add(&bucket->dropped_packets, 1);
	return 0;
}

static __always_inline void subnet_of(struct gw_addr *subnet, const struct packet_facts *facts,
				      const struct gw_config *config)
{
	__u32 prefix = facts->is_ipv4 ? 96 + config->ipv4_subnet_prefix : config->ipv6_subnet_prefix;

	/* Whole bytes first, then the partial byte; prefixes are at most 128 bits. */
#pragma unroll
	for (int i = 0; i < 16; i++) {
		__u32 bit = i * 8;

		if (prefix >= bit + 8)
			subnet->bytes[i] = facts->source.bytes[i];
		else if (prefix > bit)
			subnet->bytes[i] = facts->source.bytes[i] & (__u8)(0xff << (8 - (prefix - bit)));
		else
			subnet->bytes[i] = 0;
	}
}

SEC("xdp")
int gatewarden_xdp(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	__u64 bytes = c.end - c.pos;
	struct packet_facts facts = {};
	struct gw_lpm_key lpm_key;
	struct gw_config *config;
	enum parse_result parsed;
	__u32 zero = 0, port;
	__u8 *protected;
	__u16 proto;
	__u64 now;

	proto = parse_ethernet(&c);
	if (proto == 0)
		return count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);
	if (proto == ETH_P_IP)
		parsed = parse_ipv4(&c, &facts);
	else if (proto == ETH_P_IPV6)
		parsed = parse_ipv6(&c, &facts);
	else
		return count(GW_ACTION_PASS, GW_REASON_NOT_IP, bytes);
	if (parsed == MALFORMED)
		return count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);

	config = bpf_map_lookup_elem(&gw_config, &zero);
	if (!config)
		return count(GW_ACTION_PASS, GW_REASON_UNPROTECTED, bytes);

	/* The lists judge every packet whose source we know, whatever its port. */
	lpm_key_from(&lpm_key, &facts.source);
	if (config->allowlist_entries && bpf_map_lookup_elem(&gw_allowlist, &lpm_key))
		return count(GW_ACTION_PASS, GW_REASON_ALLOWLIST, bytes);
	if (config->blocklist_entries && is_blocked(&lpm_key))
		return count(GW_ACTION_DROP, GW_REASON_BLOCKLIST, bytes);
	if (parsed == UNSUPPORTED)
		return count(GW_ACTION_PASS, GW_REASON_UNSUPPORTED, bytes);

	if (!facts.is_fragment) {
		port = facts.dest_port;
		protected = bpf_map_lookup_elem(&gw_ports, &port);
		if (!protected || *protected != GW_PORT_PROTECTED)
			return count(GW_ACTION_PASS, GW_REASON_UNPROTECTED, bytes);
	}

	now = bpf_ktime_get_ns();
	if (!charge(&gw_sources, &facts.source, now, config->source_interval_ns, config->source_tolerance_ns))
		return count(GW_ACTION_DROP, GW_REASON_RATE_IP, bytes);

	struct gw_addr subnet;
	subnet_of(&subnet, &facts, config);
	if (!charge(&gw_subnets, &subnet, now, config->subnet_interval_ns, config->subnet_tolerance_ns))
		return count(GW_ACTION_DROP, GW_REASON_RATE_SUBNET, bytes);

	return count(GW_ACTION_PASS, GW_REASON_WITHIN_LIMIT, bytes);
}
