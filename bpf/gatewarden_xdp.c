/* SPDX-License-Identifier: GPL-2.0
 *
 * gatewarden_xdp.c: Gatewarden's XDP rate limiter.
 *
 * For every packet: parse Ethernet (up to two VLAN tags), IPv4 (honouring IHL) or IPv6
 * (a bounded walk over extension headers), and TCP/UDP destination ports. Then, in order:
 *   1. allowlist (LPM trie)          -> pass, never limited
 *   2. blocklist (LPM trie, expiry)  -> drop while the entry has not expired
 *   3. protected ports only (non-first fragments and header chains we do not walk count: they carry
 *      no port to exempt them):
 *      per-source GCRA (/32, /128)   -> drop when over
 *      per-subnet GCRA (/24, /48-/64) -> drop when over
 *      (observe mode, gw_config.observe: counted as would_drop and passed instead; bans still drop)
 * Every decision lands in a per-CPU (action, reason) counter.
 *
 * Rate state is one 64-bit word per key (the GCRA theoretical arrival time) updated by
 * compare-and-swap: no lost updates across CPUs and, unlike a fixed window, no double
 * burst at window edges. bpf_spin_lock is not available in LRU maps; CAS needs -mcpu=v3.
 *
 * What keeps the cost below a naive fixed-window program's while doing more:
 *   - the rate clock is the coarse monotonic clock (one tick, 1-10 ms), read once per tick per CPU
 *     and otherwise taken from a per-CPU cache keyed by jiffies: a load and a compare instead of a
 *     TSC read behind a helper call, which on virtual machines with return-thunk mitigations costs
 *     as much as a hash lookup. GCRA stays exact over time; within a tick arrivals are judged as
 *     simultaneous, and the burst tolerance absorbs them (docs/xdp.md has the bound);
 *   - a source's allow/block verdict is cached in its bucket for the current list generation,
 *     so a hot source skips both trie lookups;
 *   - a key the maps do not hold gets a bucket only when it is seen twice within the longest
 *     emission interval (gw_sightings in gatewarden_abi.h): a spoofed flood of one-packet sources
 *     costs a subnet lookup and a time stamp per packet, not a map insert and an eviction, and
 *     the rate maps hold the keys that keep sending, not every address the flood forges.
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
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_OFFENDERS_DEFAULT_ENTRIES);
	__type(key, struct gw_offender_key);
	__type(value, __u64);
} gw_offenders SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_INSERTS_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} gw_inserts SEC(".maps");

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
	__uint(max_entries, GW_SIGHTINGS_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} gw_sightings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GW_LIST_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} gw_list_filter SEC(".maps");

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
#define IPV4_MORE_FRAGMENTS 0x2000
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
	/* What a SYN cookie answer needs (see answer_syn): */
	__u8 tcp_flags;     /* TCP only: the flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 plain_l3;      /* IPv4 without options, not a fragment; IPv6 with TCP right after the fixed header */
	__u16 l3_offset;    /* where the IP header starts (after up to two VLAN tags) */
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
static __always_inline enum parse_result read_dest_port(struct cursor *c, __u8 l4proto, struct packet_facts *facts)
{
	__u16 *port = &facts->dest_port;

	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = c->pos;

		if ((void *)(tcp + 1) > c->end || tcp->doff < 5)
			return MALFORMED;
		*port = bpf_ntohs(tcp->dest);
		facts->tcp_flags = ((__u8 *)tcp)[13];
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
	facts->plain_l3 = header_len == sizeof(*ip) && !(ip->frag_off & bpf_htons(IPV4_MORE_FRAGMENTS));
	c->pos += header_len;
	return read_dest_port(c, ip->protocol, facts);
}

static __always_inline enum parse_result parse_ipv6(struct cursor *c, struct packet_facts *facts)
{
	struct ipv6hdr *ip6 = c->pos;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > c->end || ip6->version != 6)
		return MALFORMED;
	__builtin_memcpy(facts->source.bytes, &ip6->saddr, 16);
	/* A source in ::/64 (unspecified, loopback, IPv4-compatible, IPv4-mapped) never comes from a real
	 * peer, and its key or its /64 would alias the IPv4-mapped keys IPv4 sources are held under: an
	 * IPv6 packet from ::ffff:a.b.c.d would be charged to a.b.c.d, and a ban of its /64, ::/64, would
	 * cover every IPv4 address. Judged as malformed: passed untouched, and the kernel's IPv6 input
	 * drops such sources (RFC 4291 2.5.5.2). */
	if (!(ip6->saddr.in6_u.u6_addr32[0] | ip6->saddr.in6_u.u6_addr32[1]))
		return MALFORMED;
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
			facts->plain_l3 = i == 0;
			return read_dest_port(c, nexthdr, facts);
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
	return action == GW_ACTION_DROP ? XDP_DROP : action == GW_ACTION_SYNCOOKIE ? XDP_TX : XDP_PASS;
}

/* A packet over a rate limit: dropped, or in observe mode counted as would_drop and passed.
 * Everything before this (the bucket's charge, its drop count, the offender entry) is the same in
 * both modes, so would_drop counts what enforce mode drops and the top offenders are the same.
 * Only the drop paths read the flag: the pass path is unchanged. */
static __always_inline int over_limit(const struct gw_config *config, __u32 reason, __u64 bytes)
{
	return count(config->observe ? GW_ACTION_WOULD_DROP : GW_ACTION_DROP, reason, bytes);
}

static __always_inline void lpm_key_from(struct gw_lpm_key *key, const struct gw_addr *addr)
{
	key->prefixlen = 128;
	__builtin_memcpy(key->addr, addr->bytes, 16);
}

static __always_inline void count_insert(__u32 counter)
{
	__u64 *inserts = bpf_map_lookup_elem(&gw_inserts, &counter);

	if (inserts) /* per-CPU */
		*inserts += 1;
}

/* Registers `key` as an offender whose drop count just reached `power` (a power of two). */
static __always_inline void register_offender(const struct gw_addr *key, __u32 kind, __u64 power)
{
	struct gw_offender_key offender = { .kind = kind };

	__builtin_memcpy(&offender.addr, key, sizeof(offender.addr));
	if (bpf_map_update_elem(&gw_offenders, &offender, &power, BPF_ANY) == 0 && power == 1)
		count_insert(GW_INSERTS_OFFENDERS);
}

/* One more packet dropped for rate from `bucket`: an atomic add on a line the CAS already owns,
 * and a write to gw_offenders only when the count reaches a power of two. */
static __always_inline void note_drop(struct gw_bucket *bucket, const struct gw_addr *key, __u32 kind)
{
	__u64 before = __sync_fetch_and_add(&bucket->dropped_packets, 1);

	if ((before & (before + 1)) == 0) /* before + 1 is a power of two */
		register_offender(key, kind, before + 1);
}

/* How many nested bans (a /32 inside a /24 inside a /16 ...) the lookup looks through. */
#define MAX_BAN_NESTING 4

/* Whether the blocklist holds an unexpired entry covering the source. The trie answers with the
 * longest match only, and an expired entry must not hide a broader live one (a /32 banned for a
 * minute inside a /24 banned for good): past an expired match the lookup goes on among the
 * prefixes shorter than that entry's. Its length is not stored, so it is found as the shortest
 * prefix length whose lookup still returns that entry (a binary search: lookup(p) returns it
 * exactly when its length is at most p). This runs only past an expired entry. */
static __always_inline int is_blocked(const struct gw_lpm_key *source)
{
	struct gw_lpm_key key = *source;
	struct gw_block_entry *entry, *found;
	__u32 low, high, middle;
	__u64 now = 0;

	for (int depth = 0; depth < MAX_BAN_NESTING; depth++) {
		entry = bpf_map_lookup_elem(&gw_blocklist, &key);
		if (!entry)
			return 0;
		if (entry->expires_boot_ns == 0)
			return 1;
		if (!now)
			now = bpf_ktime_get_boot_ns();
		if (entry->expires_boot_ns > now)
			return 1;
		low = 0;
		high = key.prefixlen;
		for (int step = 0; step < 8 && low < high; step++) { /* 8 halvings cover 0..128 */
			middle = (low + high) / 2;
			key.prefixlen = middle;
			found = bpf_map_lookup_elem(&gw_blocklist, &key);
			if (found == entry)
				high = middle;
			else
				low = middle + 1;
		}
		if (high == 0)
			return 0;
		key.prefixlen = high - 1;
	}
	return 0;
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

/* Charges one packet to `bucket` (looked up by the caller; NULL creates it under `key`).
 * A key created from a sighting (see seen_recently) starts as if the sighted packet had been
 * charged at `sighted_at`; 0 means no earlier packet to account for.
 * `kind` names the map for the insert and offender counts. Returns 1 to pass. */
static __always_inline int charge(void *map, __u32 kind, struct gw_bucket *bucket, const struct gw_addr *key,
				  __u64 now, __u64 sighted_at, __u64 interval, __u64 tolerance)
{
	if (interval == 0)
		return 1;
	if (!bucket) {
		__u64 earlier = sighted_at ? sighted_at + interval : 0;
		__u64 start = earlier > now ? earlier : now;
		struct gw_bucket fresh = { .tat_ns = start + interval };
		int conforms = fresh.tat_ns - now <= tolerance;

		if (!conforms) {
			fresh.tat_ns = start;
			fresh.dropped_packets = 1;
		}
		if (bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST) == 0) {
			count_insert(kind == GW_OFFENDER_SOURCE ? GW_INSERTS_SOURCES : GW_INSERTS_SUBNETS);
			if (!conforms)
				register_offender(key, kind, 1);
			return conforms;
		}
		/* Another CPU created it meanwhile: charge the one that exists. */
		bucket = bpf_map_lookup_elem(map, key);
		if (!bucket)
			return 1; /* could not track: fail open, nftables still stands behind */
	}
	if (gcra_conforms(bucket, now, interval, tolerance))
		return 1;
	note_drop(bucket, key, kind);
	return 0;
}

/* The first `bits` bits of a 64-bit big-endian half, as a mask in network byte order. */
static __always_inline __u64 prefix_mask(__u32 bits)
{
	if (bits == 0)
		return 0;
	if (bits >= 64)
		return ~0ULL;
	return bpf_cpu_to_be64(~0ULL << (64 - bits));
}

static __always_inline void subnet_of(struct gw_addr *subnet, const struct packet_facts *facts,
				      const struct gw_config *config)
{
	__u32 prefix = facts->is_ipv4 ? 96 + config->ipv4_subnet_prefix : config->ipv6_subnet_prefix;
	__u64 high, low;

	__builtin_memcpy(&high, &facts->source.bytes[0], 8);
	__builtin_memcpy(&low, &facts->source.bytes[8], 8);
	if (prefix <= 64) {
		high &= prefix_mask(prefix);
		low = 0;
	} else {
		low &= prefix_mask(prefix - 64);
	}
	__builtin_memcpy(&subnet->bytes[0], &high, 8);
	__builtin_memcpy(&subnet->bytes[8], &low, 8);
}

/* The coarse clock as of the last tick this CPU saw: the rate clock's per-CPU cache. */
struct tick_time {
	__u64 jiffies;
	__u64 coarse_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tick_time);
} gw_tick_time SEC(".maps");

/* The rate clock: CLOCK_MONOTONIC_COARSE, read once per tick per CPU. The coarse clock only moves
 * at ticks, and jiffies count them; bpf_jiffies64 is inlined (a load) where every helper call pays
 * a return thunk on CPUs with return-stack mitigations, so most packets pay a load and a compare.
 * If a tick's jiffies are visible before its clock update, the clock reads unchanged and the cache
 * is left for the next packet to refresh. */
static __always_inline __u64 rate_clock_ns(void)
{
	__u64 tick = bpf_jiffies64(), now;
	struct tick_time *cached;
	__u32 zero = 0;

	cached = bpf_map_lookup_elem(&gw_tick_time, &zero);
	if (!cached)
		return bpf_ktime_get_coarse_ns();
	if (cached->jiffies == tick)
		return cached->coarse_ns;
	now = bpf_ktime_get_coarse_ns();
	if (now != cached->coarse_ns) {
		cached->coarse_ns = now;
		cached->jiffies = tick;
	}
	return now;
}

/* Whether `key`, which has no bucket, was seen within the sighting window, and if so roughly when
 * (rounded down to the stamp unit); records this sighting either way. Racing CPUs may lose a
 * stamp: that only delays tracking by a packet. */
static __always_inline int seen_recently(const struct gw_addr *key, __u64 now, const struct gw_config *config,
					 __u64 *sighted_at)
{
	__u32 slot, stamp, age, *last;
	__u64 high, low;

	*sighted_at = 0;
	if (config->sighting_window == 0)
		return 1;
	__builtin_memcpy(&high, &key->bytes[0], 8);
	__builtin_memcpy(&low, &key->bytes[8], 8);
	slot = (__u32)(((high ^ low) * 0x9E3779B97F4A7C15ULL) >> (64 - 20)); /* log2(GW_SIGHTINGS_ENTRIES) */
	last = bpf_map_lookup_elem(&gw_sightings, &slot);
	if (!last)
		return 1;
	stamp = (__u32)(now >> GW_SIGHTING_UNIT_SHIFT);
	age = stamp - *last;
	*last = stamp;
	if (age > config->sighting_window)
		return 0;
	*sighted_at = (__u64)(stamp - age) << GW_SIGHTING_UNIT_SHIFT;
	return 1;
}

enum listed {
	LISTED_NONE = GW_LISTED_NONE,
	LISTED_ALLOW = GW_LISTED_ALLOW,
	LISTED_BLOCK,
};

/* The source's index in gw_list_filter (see gatewarden_abi.h). */
static __always_inline __u32 list_filter_index(const struct gw_addr *source)
{
	const __u8 *b = source->bytes;

	if (b[10] == 0xff && b[11] == 0xff && !(b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7] | b[8] | b[9]))
		return (__u32)b[12] << 8 | b[13];
	return ((__u32)b[0] << 8 | b[1]) ^ ((__u32)b[2] << 8 | b[3]);
}

/* Looks the source up in the allow and block tries, unless the filter rules both out. */
static __always_inline enum listed lookup_lists(const struct gw_addr *source, const struct gw_config *config)
{
	__u32 index = list_filter_index(source);
	__u32 word = index / 64;
	struct gw_lpm_key key;
	__u64 *bits;

	bits = bpf_map_lookup_elem(&gw_list_filter, &word);
	if (bits && !(*bits & (1ULL << (index % 64))))
		return LISTED_NONE;
	lpm_key_from(&key, source);
	if (config->allowlist_entries && bpf_map_lookup_elem(&gw_allowlist, &key))
		return LISTED_ALLOW;
	if (config->blocklist_entries && is_blocked(&key))
		return LISTED_BLOCK;
	return LISTED_NONE;
}

/* The lists' verdict, from the source's bucket when it holds one for this generation. */
static __always_inline enum listed check_lists(struct gw_bucket *bucket, const struct gw_addr *source,
					       const struct gw_config *config)
{
	__u64 generation = config->list_generation;
	enum listed verdict;

	if (!config->allowlist_entries && !config->blocklist_entries)
		return LISTED_NONE;
	if (bucket) {
		__u64 cached = *(volatile __u64 *)&bucket->list_verdict;

		if (cached >> 32 == generation)
			return (enum listed)(cached & 0xffffffff);
	}
	verdict = lookup_lists(source, config);
	if (bucket && verdict != LISTED_BLOCK)
		*(volatile __u64 *)&bucket->list_verdict = generation << 32 | verdict;
	return verdict;
}

/* User space rewrites the config while packets run (load, block, unblock): every decision about
 * one packet uses one copy of it, read from the map once, a word at a time (volatile: the compiler
 * may neither read a field from the map again in place of the copy nor skip the read). */
static __always_inline void read_config(struct gw_config *copy, const struct gw_config *shared)
{
	const volatile __u64 *from = (const volatile __u64 *)shared;
	__u64 *to = (__u64 *)copy;

	_Static_assert(sizeof(*copy) % sizeof(__u64) == 0, "gw_config is a whole number of words");
#pragma unroll
	for (int word = 0; word < sizeof(*copy) / sizeof(__u64); word++)
		to[word] = from[word];
}

/* ---- SYN cookies ----------------------------------------------------------------------- */

/* A SYN to a protected port that passed the lists and the limits is answered here, with the SYN-ACK
 * nftables' synproxy would have sent after an skb allocation, a route lookup and a trip through the
 * output path: same cookie (the kernel's own syncookie secret, through bpf_tcp_raw_gen_syncookie_*),
 * same options, same timestamp encoding (nf_synproxy's synproxy_init_timestamp_cookie), so the ACK
 * that returns the cookie is validated by the ruleset's `synproxy-ack` rule exactly as if synproxy had
 * answered. Anything this path does not handle (IP options, IPv6 extension headers, data in the SYN,
 * options it cannot parse, a destination the host routes elsewhere) passes to the kernel, where the
 * ruleset's `notrack` + `synproxy` answers it as before. */

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#define TCP_MAX_WSCALE 14
#define TCP_MAX_HEADER 60
#define SYN_BUFFER 64 /* a power of two above TCP_MAX_HEADER: indexes into it are masked */

/* What the reply sets that the stack would take from sysctls: synproxy's defaults. */
#define SYNACK_TTL 64

/* The options of a SYN that the SYN-ACK answers. */
struct syn_options {
	__u32 tsval;
	__u8 wscale;
	__u8 mss, window, sack, timestamp; /* offered */
};

/* The length of the option that starts at `at`, or 0 when there is none (options start at 20 or later). */
static __always_inline __u8 option_size(const __u8 *tcp, __u8 at)
{
	return at ? tcp[(at + 1) & (SYN_BUFFER - 1)] : 0;
}

/* Parses a SYN's options from its TCP header (`tcp`, `length` bytes, zero beyond). Returns 0, or -1 for
 * options the kernel should judge (truncated, bad lengths): nftables' synproxy answers those.
 * The walk only records where each option kind (below 16) starts; the options are read after it. A walk
 * that decides per kind inside the loop multiplies the verifier's states by every combination of options
 * seen so far, and 40 steps of that exceed its budget; this one converges in a few steps. At most 40
 * steps cover 40 bytes of options, one NOP per step in the worst case. */
static __always_inline int parse_syn_options(const __u8 *tcp, __u32 length, struct syn_options *options)
{
	__u8 found[16] = {}; /* per kind below 16: where it starts (0: absent); its length follows its kind */
	__u32 at = sizeof(struct tcphdr), size;
	__u8 kind;

	for (int step = 0; step < TCP_MAX_HEADER - sizeof(struct tcphdr); step++) {
		if (at >= length)
			break;
		kind = tcp[at & (SYN_BUFFER - 1)];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			at++;
			continue;
		}
		if (at + 1 >= length)
			return -1;
		size = tcp[(at + 1) & (SYN_BUFFER - 1)];
		if (size < 2 || at + size > length)
			return -1;
		if (kind < 16) /* a kind above is none of the four read below, and must not stand in for one */
			found[kind] = at;
		at += size;
	}
	if (at < length && tcp[at & (SYN_BUFFER - 1)] != TCPOPT_EOL)
		return -1; /* more than the walk covers: cannot happen in 40 bytes, but say so */

	/* The sizes nf_synproxy accepts; an option of another size is ignored, as it ignores it. */
	options->mss = option_size(tcp, found[TCPOPT_MSS]) == 4;
	options->sack = option_size(tcp, found[TCPOPT_SACK_PERM]) == 2;
	if (option_size(tcp, found[TCPOPT_WINDOW]) == 3) {
		at = found[TCPOPT_WINDOW];
		options->window = 1;
		options->wscale = tcp[(at + 2) & (SYN_BUFFER - 1)];
		if (options->wscale > TCP_MAX_WSCALE)
			options->wscale = TCP_MAX_WSCALE;
	}
	if (option_size(tcp, found[TCPOPT_TIMESTAMP]) == 10) {
		at = found[TCPOPT_TIMESTAMP];
		options->timestamp = 1;
		options->tsval = (__u32)tcp[(at + 2) & (SYN_BUFFER - 1)] << 24 | (__u32)tcp[(at + 3) & (SYN_BUFFER - 1)] << 16 |
				 (__u32)tcp[(at + 4) & (SYN_BUFFER - 1)] << 8 | (__u32)tcp[(at + 5) & (SYN_BUFFER - 1)];
	}
	return 0;
}

/* One's complement sum folded to 16 bits. Words are summed as they lie in memory, so the result is
 * stored as it comes, whatever the host's byte order. */
static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline __u64 sum_words(const void *data, int words)
{
	const __u32 *word = data;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		sum += word[i];
	return sum;
}

/* The SYN-ACK's TCP header, built on the stack and copied over the SYN's. */
struct synack {
	struct tcphdr tcp;
	__be32 options[5]; /* MSS, timestamps (with SACK-permitted or two NOPs), window scale */
};

/* Whether the destination is this host's: the kernel's routing decision, as the ruleset's
 * `fib daddr type local`. A host that does not forward (the lookup says so first) receives only for
 * itself; one that forwards answers only for its own addresses and leaves routed traffic alone. */
static __always_inline int is_for_this_host(struct xdp_md *ctx, struct bpf_fib_lookup *fib)
{
	fib->ifindex = ctx->ingress_ifindex;
	switch (bpf_fib_lookup(ctx, fib, sizeof(*fib), 0)) {
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
	case BPF_FIB_LKUP_RET_NOT_FWDED: /* local (or broadcast and multicast, refused before this) */
		return 1;
	default:
		return 0;
	}
}

/* Builds the SYN-ACK's options as nf_synproxy's synproxy_build_options does, for the options the SYN
 * offered and the configuration allows; returns their length in bytes. With timestamps, the tsval
 * carries the client's window scale (0xf: none), SACK (bit 4) and ECN (bit 5, never: nftables'
 * synproxy has no ECN flag) for synproxy_check_timestamp_cookie to restore from the ACK's tsecr. */
static __always_inline __u32 build_synack_options(struct synack *reply, const struct syn_options *offered,
						  __u8 flags, __u8 wscale, __u16 mss, __u64 now)
{
	int timestamps = offered->timestamp && (flags & GW_SYNCOOKIE_TIMESTAMPS);
	/* Without timestamps synproxy has nowhere to keep the client's window scale and SACK: it offers neither. */
	int window = timestamps && offered->window && (flags & GW_SYNCOOKIE_WSCALE);
	int sack = timestamps && offered->sack && (flags & GW_SYNCOOKIE_SACK);
	__u32 words = 0, tsval;

	if (offered->mss)
		reply->options[words++] = bpf_htonl(TCPOPT_MSS << 24 | 4 << 16 | mss);
	if (timestamps) {
		tsval = (__u32)(now / 1000000) & ~0x3fU;
		tsval |= window ? offered->wscale : 0xf;
		if (sack)
			tsval |= 1 << 4;
		reply->options[words] = bpf_htonl(sack ? (TCPOPT_SACK_PERM << 24 | 2 << 16 | TCPOPT_TIMESTAMP << 8 | 10)
						  : (TCPOPT_NOP << 24 | TCPOPT_NOP << 16 | TCPOPT_TIMESTAMP << 8 | 10));
		reply->options[words + 1] = bpf_htonl(tsval);
		reply->options[words + 2] = bpf_htonl(offered->tsval);
		words += 3;
	}
	if (window) /* words is 3 or 4 here: the last slot at most */
		reply->options[words] = bpf_htonl(TCPOPT_NOP << 24 | TCPOPT_WINDOW << 16 | 3 << 8 | wscale);
	return (words + window) * 4;
}

/* Answers the SYN whose IP header starts at `l3` with a SYN cookie SYN-ACK (XDP_TX), or returns XDP_PASS
 * for the kernel to judge it. The reply is never longer than the SYN's TCP header (each option it sends
 * was offered in at least as many padded bytes), so the frame only shrinks.
 *
 * A global function: the verifier checks it once, on its own, rather than once for every path of the
 * rate limiter that ends in a pass (their states differ, and the paths times this exceed its budget).
 * So it takes scalars, not pointers into the caller's stack (five at most): `where` is the IP header's
 * offset | 1 << 16 for IPv4, `settings` is
 * syncookie_mss (16 bits, this family's) | syncookie_wscale << 16 | syncookie_flags << 24, and
 * `interface_mac` the interface's own address (mac_value of gw_config.syncookie_mac).
 *
 * Only a SYN the kernel itself would answer: sent to the interface's own MAC from a unicast one (never a
 * frame a bridge flooded here for another host, nor one whose reply would reach a whole segment), from a
 * source routing would not call martian (0/8, 127/8, multicast and reserved IPv4, IPv6 multicast, the
 * destination itself), to an address of this host (is_for_this_host). */
/* A MAC address as a number, its first byte highest: what gw_answer_syn compares. */
static __always_inline __u64 mac_value(const __u8 *mac)
{
	return (__u64)mac[0] << 40 | (__u64)mac[1] << 32 | (__u64)mac[2] << 24 | (__u64)mac[3] << 16 |
	       (__u64)mac[4] << 8 | mac[5];
}

__attribute__((noinline)) int gw_answer_syn(struct xdp_md *ctx, __u32 where, __u32 settings, __u64 now,
					    __u64 interface_mac)
{
	__u32 l3 = where & 0xffff, is_ipv4 = where >> 16;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	/* One buffer for the three stages, in turn: the stack holds 512 bytes for the program and this. */
	union {
		struct bpf_fib_lookup fib; /* the routing question */
		__u8 syn[SYN_BUFFER];      /* then the SYN's TCP header */
		struct synack reply;       /* then the SYN-ACK's */
	} scratch = {};
	struct bpf_fib_lookup *fib = &scratch.fib;
	struct syn_options offered = {};
	__u32 l4, syn_length, reply_length, options_length;
	__be32 client_sequence;
	__be16 client_port, server_port;
	__u32 frame_length = end - data;
	__u16 mss = settings & 0xffff;
	__u64 sum;
	__s64 cookie;
	struct tcphdr *tcp;

	if (l3 > sizeof(struct ethhdr) + MAX_VLAN_DEPTH * sizeof(struct vlan_tag))
		return XDP_PASS;
	{
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > end || interface_mac == 0 || mac_value(eth->h_dest) != interface_mac ||
		    (eth->h_source[0] & 1))
			return XDP_PASS;
	}
	if (is_ipv4) {
		struct iphdr *ip = data + l3;
		__u8 first;

		l4 = l3 + sizeof(*ip);
		tcp = (void *)(ip + 1); /* from ip, not from data + l4: the bounds check then covers both */
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		syn_length = tcp->doff * 4;
		/* Data in a SYN, or a header checksum that is wrong: the kernel's to judge (and drop). */
		if (bpf_ntohs(ip->tot_len) != sizeof(*ip) + syn_length || fold(sum_words(ip, 5)) != 0xffff)
			return XDP_PASS;
		/* TCP to a broadcast or multicast address is never a connection; a martian source is dropped by
		 * routing before any socket sees it. */
		if ((bpf_ntohl(ip->daddr) >> 28) >= 0xe)
			return XDP_PASS;
		first = bpf_ntohl(ip->saddr) >> 24;
		if (first == 0 || first == 127 || first >= 224 || ip->saddr == ip->daddr)
			return XDP_PASS;
		fib->family = 2; /* AF_INET */
		fib->tos = ip->tos;
		fib->tot_len = bpf_ntohs(ip->tot_len);
		fib->ipv4_src = ip->saddr;
		fib->ipv4_dst = ip->daddr;
	} else {
		struct ipv6hdr *ip6 = data + l3;

		l4 = l3 + sizeof(*ip6);
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		syn_length = tcp->doff * 4;
		if (bpf_ntohs(ip6->payload_len) != syn_length || ip6->daddr.in6_u.u6_addr8[0] == 0xff ||
		    ip6->saddr.in6_u.u6_addr8[0] == 0xff || __builtin_memcmp(&ip6->saddr, &ip6->daddr, 16) == 0)
			return XDP_PASS;
		fib->family = 10; /* AF_INET6 */
		fib->tot_len = sizeof(*ip6) + syn_length;
		__builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
	}
	fib->l4_protocol = IPPROTO_TCP;
	fib->sport = tcp->source;
	fib->dport = tcp->dest;
	if (syn_length < sizeof(struct tcphdr) || syn_length > TCP_MAX_HEADER || !is_for_this_host(ctx, fib))
		return XDP_PASS;

	/* The whole TCP header on the stack: options are walked there, bounds checked once. */
	if (bpf_xdp_load_bytes(ctx, l4, scratch.syn, syn_length) < 0)
		return XDP_PASS;
	if (parse_syn_options(scratch.syn, syn_length, &offered) < 0)
		return XDP_PASS;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (is_ipv4) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		cookie = bpf_tcp_raw_gen_syncookie_ipv4(ip, (struct tcphdr *)scratch.syn, syn_length);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		cookie = bpf_tcp_raw_gen_syncookie_ipv6(ip6, (struct tcphdr *)scratch.syn, syn_length);
	}
	if (cookie < 0)
		return XDP_PASS;

	client_sequence = ((struct tcphdr *)scratch.syn)->seq;
	client_port = ((struct tcphdr *)scratch.syn)->source;
	server_port = ((struct tcphdr *)scratch.syn)->dest;
	struct synack *reply = &scratch.reply;
	__builtin_memset(reply, 0, sizeof(*reply)); /* the checksum sums it whole: zero past the options */
	options_length = build_synack_options(reply, &offered, settings >> 24, (settings >> 16) & 0xff, mss, now);
	reply_length = sizeof(reply->tcp) + options_length;
	if (reply_length > syn_length)
		return XDP_PASS; /* cannot happen (see above); never grow the frame */
	reply->tcp.source = server_port;
	reply->tcp.dest = client_port;
	reply->tcp.seq = bpf_htonl((__u32)cookie);
	reply->tcp.ack_seq = bpf_htonl(bpf_ntohl(client_sequence) + 1);
	reply->tcp.doff = reply_length / 4;
	reply->tcp.syn = 1;
	reply->tcp.ack = 1;
	reply->tcp.window = 0; /* as synproxy: the client waits for the server's window, sent once it answers */
	/* The checksum over the pseudo header and the reply (zero beyond its length). */
	sum = sum_words(reply, sizeof(*reply) / 4) + bpf_htons(IPPROTO_TCP) + bpf_htons(reply_length);

	/* Swap the addresses in place: Ethernet (VLAN tags stay), then IP, with a fresh header. */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	{
		struct ethhdr *eth = data;
		__u8 mac[ETH_ALEN];

		if ((void *)(eth + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	}
	if (is_ipv4) {
		struct iphdr *ip = data + l3;
		__be32 address;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		address = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = address;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + reply_length);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = SYNACK_TTL;
		ip->check = 0;
		ip->check = ~fold(sum_words(ip, 5));
		sum += (__u64)ip->saddr + ip->daddr;
	} else {
		struct ipv6hdr *ip6 = data + l3;
		struct in6_addr address;

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		address = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = address;
		*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no traffic class, no flow label */
		ip6->payload_len = bpf_htons(reply_length);
		ip6->hop_limit = SYNACK_TTL;
		sum += sum_words(&ip6->saddr, 8);
	}
	reply->tcp.check = ~fold(sum);
	/* The addresses are swapped: from here a failure aborts (neither can happen: both stay in the frame). */
	if (reply_length < sizeof(reply->tcp) || reply_length > sizeof(*reply) ||
	    bpf_xdp_store_bytes(ctx, l4, reply, reply_length) < 0)
		return XDP_DROP;
	/* Trim what followed: the SYN's longer options and any Ethernet padding. */
	if (bpf_xdp_adjust_tail(ctx, (int)(l4 + reply_length) - (int)frame_length) < 0)
		return XDP_ABORTED;
	return XDP_TX;
}

/* Whether the TCP segment whose IP header starts at `l3` (plain: no IPv4 options, TCP right after the IPv6
 * header) belongs to a connection this host holds a socket for: established or closing, in the namespace of
 * the interface. Not a listener, a half-open handshake or TIME_WAIT: an ACK flood finds no such socket, and
 * neither does a forged segment, whose 4-tuple must match a real connection's exactly.
 * A global function, for the verifier's budget (see gw_answer_syn). */
__attribute__((noinline)) int gw_has_connection(struct xdp_md *ctx, __u32 l3, __u32 is_ipv4)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u32 size, state;

	if (l3 > sizeof(struct ethhdr) + MAX_VLAN_DEPTH * sizeof(struct vlan_tag))
		return 0;
	if (is_ipv4) {
		struct iphdr *ip = data + l3;
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > end)
			return 0;
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		tuple.ipv4.sport = tcp->source;
		tuple.ipv4.dport = tcp->dest;
		size = sizeof(tuple.ipv4);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		struct tcphdr *tcp = (void *)(ip6 + 1);

		if ((void *)(tcp + 1) > end)
			return 0;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		tuple.ipv6.sport = tcp->source;
		tuple.ipv6.dport = tcp->dest;
		size = sizeof(tuple.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	state = sk->state;
	bpf_sk_release(sk);
	switch (state) {
	case BPF_TCP_ESTABLISHED:
	case BPF_TCP_FIN_WAIT1:
	case BPF_TCP_FIN_WAIT2:
	case BPF_TCP_CLOSE_WAIT:
	case BPF_TCP_LAST_ACK:
	case BPF_TCP_CLOSING:
		return 1;
	default:
		return 0;
	}
}

/* How much cheaper a segment of a held connection is than any other packet, as a shift of the emission
 * interval: 1/16. The limits are the seed's packets per second, meant for floods; a client's ACKs while it
 * downloads, or its data while it uploads, are not a flood, and at one packet each a single 25 Mbit/s
 * download (an ACK every two segments) would reach 1000 per second. Still bounded (16x the rate per source
 * and per subnet), so a flood over real connections is dropped here too. */
#define GW_CONNECTION_COST_SHIFT 4

/* An emission interval at a connection's price: a sixteenth, never 0 for a limit that is on (0 is "off"). */
static __always_inline __u64 connection_interval(__u64 interval)
{
	__u64 cheaper = interval >> GW_CONNECTION_COST_SHIFT;

	return interval && !cheaper ? 1 : cheaper;
}

/* Whether `bucket` would take a packet at `interval` now: a read, no update. A segment over the limit even at
 * a connection's price is dropped without the socket lookup, so an ACK flood from a tracked source costs what
 * any drop costs. */
static __always_inline int would_conform(const struct gw_bucket *bucket, __u64 now, __u64 interval, __u64 tolerance)
{
	__u64 tat = *(volatile const __u64 *)&bucket->tat_ns;

	return (tat > now ? tat : now) + interval - now <= tolerance;
}

/* A packet under every limit: passed, or, when it is a plain SYN and SYN cookies are on (enforce
 * mode only), answered in place. Anything gw_answer_syn leaves alone passes as before. */
static __always_inline int within_limit(struct xdp_md *ctx, const struct packet_facts *facts,
					const struct gw_config *config, __u32 reason, __u64 now, __u64 bytes)
{
	int verdict;

	if (reason != GW_REASON_WITHIN_LIMIT || !(config->syncookie_flags & GW_SYNCOOKIE_ENABLED) || config->observe ||
	    !facts->plain_l3 || (facts->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST | TCP_FLAG_FIN)) != TCP_FLAG_SYN)
		return count(GW_ACTION_PASS, reason, bytes);
	verdict = gw_answer_syn(ctx, facts->l3_offset | (__u32)facts->is_ipv4 << 16,
				(facts->is_ipv4 ? config->syncookie_mss_ipv4 : config->syncookie_mss_ipv6) |
					(__u32)config->syncookie_wscale << 16 | (__u32)config->syncookie_flags << 24,
				now, mac_value(config->syncookie_mac));
	if (verdict == XDP_TX)
		return count(GW_ACTION_SYNCOOKIE, GW_REASON_WITHIN_LIMIT, bytes);
	if (verdict == XDP_PASS)
		return count(GW_ACTION_PASS, reason, bytes);
	return verdict; /* XDP_ABORTED: the frame was half rewritten, which cannot happen (see gw_answer_syn) */
}

SEC("xdp")
int gatewarden_xdp(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	__u64 bytes = c.end - c.pos;
	struct packet_facts facts = {};
	struct gw_bucket *source, *subnet = NULL;
	struct gw_addr subnet_key;
	const struct gw_config *shared;
	struct gw_config config;
	__u64 sighted_at = 0;
	enum parse_result parsed;
	__u64 source_interval, subnet_interval;
	__u32 zero = 0, port;
	int is_protected;
	__u32 pass_reason;
	__u8 *protected;
	__u16 proto;
	__u64 now;

	proto = parse_ethernet(&c);
	if (proto == 0)
		return count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);
	facts.l3_offset = c.pos - (void *)(long)ctx->data;
	if (proto == ETH_P_IP)
		parsed = parse_ipv4(&c, &facts);
	else if (proto == ETH_P_IPV6)
		parsed = parse_ipv6(&c, &facts);
	else
		return count(GW_ACTION_PASS, GW_REASON_NOT_IP, bytes);
	if (parsed == MALFORMED)
		return count(GW_ACTION_PASS, GW_REASON_MALFORMED, bytes);

	shared = bpf_map_lookup_elem(&gw_config, &zero);
	if (!shared)
		return count(GW_ACTION_PASS, GW_REASON_UNPROTECTED, bytes);
	read_config(&config, shared);

	if (parsed == PARSED && !facts.is_fragment) {
		port = facts.dest_port;
		protected = bpf_map_lookup_elem(&gw_ports, &port);
		is_protected = protected && *protected == GW_PORT_PROTECTED;
	} else {
		/* Non-first fragments carry no port to exempt them, and neither does a header chain we do
		 * not walk (more extensions than the walk, ESP): their source is known, so they are limited
		 * as protected traffic. Otherwise a chain of options would carry a flood past every limit. */
		is_protected = 1;
	}
	/* A pass keeps saying why it was not judged by port. */
	pass_reason = parsed == UNSUPPORTED ? GW_REASON_UNSUPPORTED : GW_REASON_WITHIN_LIMIT;

	/* The lists judge every packet whose source we know, whatever its port. */
	if (!is_protected) {
		switch (check_lists(NULL, &facts.source, &config)) {
		case LISTED_ALLOW:
			return count(GW_ACTION_PASS, GW_REASON_ALLOWLIST, bytes);
		case LISTED_BLOCK:
			return count(GW_ACTION_DROP, GW_REASON_BLOCKLIST, bytes);
		default:
			return count(GW_ACTION_PASS, GW_REASON_UNPROTECTED, bytes);
		}
	}

	now = rate_clock_ns();
	if (config.subnet_interval_ns) {
		subnet_of(&subnet_key, &facts, &config);
		subnet = bpf_map_lookup_elem(&gw_subnets, &subnet_key);
	}
	/* An untracked subnet is the shape of a spoofed flood: no source lookup until it is tracked. */
	source = (subnet || !config.subnet_interval_ns) ? bpf_map_lookup_elem(&gw_sources, &facts.source) : NULL;
	switch (check_lists(source, &facts.source, &config)) {
	case LISTED_ALLOW:
		return count(GW_ACTION_PASS, GW_REASON_ALLOWLIST, bytes);
	case LISTED_BLOCK:
		return count(GW_ACTION_DROP, GW_REASON_BLOCKLIST, bytes);
	default:
		break;
	}

	/* Tracking starts at the subnet, or at the source when there is no subnet limit. A key
	 * not seen within the window is sending slower than every limit: pass it, bucket-free. */
	if (config.subnet_interval_ns ? !subnet : (config.source_interval_ns && !source)) {
		if (!seen_recently(config.subnet_interval_ns ? &subnet_key : &facts.source, now, &config, &sighted_at))
			goto within;
		if (config.subnet_interval_ns) /* a source may outlive its subnet's bucket in the LRU */
			source = bpf_map_lookup_elem(&gw_sources, &facts.source);
	}

	/* ACK set, SYN and RST clear, and a socket for it: a segment of a connection, charged at a sixteenth. */
	source_interval = config.source_interval_ns;
	subnet_interval = config.subnet_interval_ns;
	if ((facts.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) == TCP_FLAG_ACK && facts.plain_l3 &&
	    (!source || would_conform(source, now, connection_interval(source_interval), config.source_tolerance_ns)) &&
	    (!subnet || would_conform(subnet, now, connection_interval(subnet_interval), config.subnet_tolerance_ns)) &&
	    gw_has_connection(ctx, facts.l3_offset, facts.is_ipv4)) {
		source_interval = connection_interval(source_interval);
		subnet_interval = connection_interval(subnet_interval);
	}
	if (!charge(&gw_sources, GW_OFFENDER_SOURCE, source, &facts.source, now,
		    config.subnet_interval_ns ? 0 : sighted_at, source_interval, config.source_tolerance_ns))
		return over_limit(&config, GW_REASON_RATE_IP, bytes);
	if (config.subnet_interval_ns && !charge(&gw_subnets, GW_OFFENDER_SUBNET, subnet, &subnet_key, now, sighted_at,
						  subnet_interval, config.subnet_tolerance_ns))
		return over_limit(&config, GW_REASON_RATE_SUBNET, bytes);
within:
	return within_limit(ctx, &facts, &config, pass_reason, now, bytes);
}
