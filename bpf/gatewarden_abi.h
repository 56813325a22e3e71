/* SPDX-License-Identifier: Apache-2.0
 *
 * gatewarden_abi.h: the contract between the XDP program and user space.
 *
 * Every map key and value the program shares with the loader and the exporter is
 * declared here once. The kernel program includes it; the Swift side imports it
 * through the CGatewardenABI module, so the two can never drift apart.
 * Change a layout only together with GW_ABI_VERSION: libbpf refuses to reuse a pinned
 * map whose sizes differ, so an old layout is never misread.
 */
#ifndef GATEWARDEN_ABI_H
#define GATEWARDEN_ABI_H

#include <linux/types.h>

#define GW_ABI_VERSION 10

/* What the program did with a packet. */
enum gw_action {
	GW_ACTION_PASS = 0,
	GW_ACTION_DROP = 1,
	GW_ACTION_WOULD_DROP = 2, /* observe mode: over a rate limit, counted and passed */
	GW_ACTION_SYNCOOKIE = 3,  /* a SYN under every limit answered in place (XDP_TX) with a SYN cookie SYN-ACK;
	                           * its reason is always within_limit. Appended: the other indexes keep their place */
	GW_ACTION_COUNT = 4,
};

/* Why it did it. Every action shares one list so one index names a counter. */
enum gw_reason {
	GW_REASON_WITHIN_LIMIT = 0, /* pass: protected port, under every limit */
	GW_REASON_UNPROTECTED = 1,  /* pass: IP traffic to a port we do not limit */
	GW_REASON_NOT_IP = 2,       /* pass: ARP, LLDP, ...: not ours to judge */
	GW_REASON_MALFORMED = 3,    /* pass: truncated or inconsistent headers */
	GW_REASON_ALLOWLIST = 4,    /* pass: source in the allowlist, never limited */
	GW_REASON_BLOCKLIST = 5,    /* drop: source in the blocklist, entry not expired */
	GW_REASON_RATE_IP = 6,      /* drop (would_drop in observe mode): over the per-source limit */
	GW_REASON_RATE_SUBNET = 7,  /* drop (would_drop in observe mode): over the per-subnet limit */
	GW_REASON_UNSUPPORTED = 8,  /* pass: under every limit, headers we do not walk (too many IPv6 extensions,
	                             * ESP): no port, so limited as protected traffic */
	GW_REASON_COUNT = 9,
};

/* Index into the gw_stats per-CPU array. */
#define GW_STATS_INDEX(action, reason) ((action) * GW_REASON_COUNT + (reason))
#define GW_STATS_ENTRIES (GW_ACTION_COUNT * GW_REASON_COUNT)

/* A packet and byte count; per-CPU maps hold one per CPU, user space sums them. */
struct gw_counter {
	__u64 packets;
	__u64 bytes;
};

/* An address. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one map serves both families. */
struct gw_addr {
	__u8 bytes[16];
};

/* LPM trie key of the allow and block lists. prefixlen counts bits of the mapped form:
 * an IPv4 /24 is stored as prefixlen 96 + 24 = 120. */
struct gw_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of the allowlist (presence is what counts). */
struct gw_allow_entry {
	__u64 added_boot_ns;
};

/* Who holds a ban. Each origin keeps its own lifetime: the policy's bans last exactly while the
 * policy lists them, a manual ban (`gatewarden block`) and an enforced one until their own expiry. */
enum gw_ban_origin {
	GW_BAN_POLICY = 0,
	GW_BAN_MANUAL = 1,
	GW_BAN_ENFORCE = 2,
	GW_BAN_ORIGIN_COUNT = 3,
};

/* Value of the blocklist. The program reads expires_boot_ns only: user space folds the origins'
 * expiries into it (0 if any origin holds the ban for good, else the latest) at every write. */
struct gw_block_entry {
	__u64 expires_boot_ns; /* CLOCK_BOOTTIME; 0 = never expires */
	__u64 added_boot_ns;
	__u32 origins;         /* bit (1 << enum gw_ban_origin) per origin holding the ban */
	__u32 reserved;        /* zero */
	__u64 origin_expires_boot_ns[GW_BAN_ORIGIN_COUNT]; /* per origin, 0 = never; the policy's is always 0 */
};

/* Rate state of one source or one subnet: GCRA, one word updated by compare-and-swap. */
struct gw_bucket {
	__u64 tat_ns;          /* theoretical arrival time (bpf_ktime_get_ns clock) */
	__u64 dropped_packets; /* atomically incremented on the drop path */
	/* Sources only: the allow/block verdict cached for one list generation, as
	 * (generation << 32) | GW_LISTED_*, written in one store so a reader never pairs a new
	 * generation with a stale verdict. Blocked sources are never cached (expiry is per entry). */
	__u64 list_verdict;
};

#define GW_LISTED_NONE 0
#define GW_LISTED_ALLOW 1

/* gw_offenders: the sources and subnets dropped for rate. The drop path writes an entry only when
 * a bucket's dropped_packets reaches a power of two, with that power as the value, so an entry's
 * value r bounds the bucket's count c by r <= c < 2r. The exporter's top-K walks this map (never
 * the million tracked sources) and reads exact counts from the few buckets that can be in it. */
enum gw_offender_kind {
	GW_OFFENDER_SOURCE = 0,
	GW_OFFENDER_SUBNET = 1,
};

struct gw_offender_key {
	struct gw_addr addr;   /* the source, or the subnet's network address */
	__u32 kind;            /* enum gw_offender_kind */
};

/* gw_inserts (per-CPU array): inserts into each LRU map. Buckets are never deleted, only evicted
 * when a map is full, so min(inserts, capacity) is the map's fill. */
enum gw_insert_counter {
	GW_INSERTS_SOURCES = 0,
	GW_INSERTS_SUBNETS = 1,
	GW_INSERTS_OFFENDERS = 2,
	GW_INSERTS_COUNT = 3,
};

/* The limits, written by the loader into gw_config[0]; the program reads them per packet,
 * so a changed policy takes effect without reloading the program.
 * A GCRA limit of rate r/s and burst b is an emission interval of 1e9/r ns and a tolerance of
 * b intervals. An interval of 0 disables that limit. */
struct gw_config {
	__u64 source_interval_ns;
	__u64 source_tolerance_ns;
	__u64 subnet_interval_ns;
	__u64 subnet_tolerance_ns;
	__u32 ipv6_subnet_prefix; /* 48..64 */
	__u32 ipv4_subnet_prefix; /* 24 by default */
	__u32 allowlist_entries;  /* 0 lets the program skip the trie lookup */
	__u32 blocklist_entries;  /* likewise */
	__u32 list_generation;    /* bumped after every allow/block change; starts at 1 */
	__u32 sighting_window;    /* in GW_SIGHTING_UNIT_SHIFT units; see gw_sightings. 0 tracks every key at once */
	__u32 observe;            /* non-zero: a packet over a rate limit is counted as would_drop and passed;
	                           * buckets and offenders are kept exactly as for a drop. Bans still drop. */
	__u32 reserved;           /* zero; keeps the size a multiple of 8 */
	/* SYN cookies at XDP (ABI 9; gw_config only ever grows at its end). With GW_SYNCOOKIE_ENABLED, a SYN to
	 * a protected TCP port that passed the lists and the limits is answered in place with the SYN-ACK
	 * nftables' synproxy would send: the kernel's own cookie, so synproxy's check of the returning ACK
	 * accepts it. The loader writes what it computes for the synproxy statement (HandshakeOptions). */
	__u16 syncookie_mss_ipv4;  /* MSS option of the SYN-ACK over IPv4 */
	__u16 syncookie_mss_ipv6;  /* and over IPv6 */
	__u8 syncookie_wscale;     /* window scale advertised (with GW_SYNCOOKIE_WSCALE), 0..14 */
	__u8 syncookie_flags;      /* GW_SYNCOOKIE_* */
	__u16 syncookie_reserved;  /* zero; keeps the size a multiple of 8 */
	/* ABI 10: the interface's own MAC address. A SYN is answered only when it was sent to it: a frame for
	 * another host (a bridge floods unknown unicast) or to a group address is never answered. */
	__u8 syncookie_mac[6];
	__u16 syncookie_reserved2; /* zero */
};

#define GW_SYNCOOKIE_ENABLED 0x1    /* answer SYNs (enforce mode only: the loader never sets it when observing) */
#define GW_SYNCOOKIE_WSCALE 0x2     /* the server scales windows: offer syncookie_wscale */
#define GW_SYNCOOKIE_TIMESTAMPS 0x4 /* echo timestamps (and carry the client's options in them) */
#define GW_SYNCOOKIE_SACK 0x8       /* offer SACK-permitted */

/* gw_list_filter: a 65536-bit map of the address space, one bit per IPv4 /16 (the top 16 bits)
 * or per fold of an IPv6 address's first 32 bits. A bit is set when an allow or block entry
 * may cover an address with that index; a clear bit lets the program skip both tries.
 * False positives only cost the trie lookups; user space rebuilds it on every list change. */
#define GW_LIST_FILTER_WORDS 1024

/* gw_sightings: when a key the rate maps do not hold was last seen, one u32 time stamp per slot
 * (the rate clock >> GW_SIGHTING_UNIT_SHIFT, about a millisecond), indexed by a hash of the key.
 * The key tracked first is the subnet (the source when there is no subnet limit). It gets a bucket
 * only when seen again within gw_config.sighting_window, the longest emission interval, and that
 * bucket starts as if the sighted packet had been charged when it was seen. A key that stays out
 * has every gap longer than every interval, so exact GCRA would pass all of its packets too: the
 * limits lose nothing (but the stamp's rounding, under a millisecond of credit). What it buys: a
 * spoofed flood of one-packet sources writes one stamp per packet instead of inserting (and
 * evicting) a bucket, and the rate maps hold the keys that keep sending, not every address a flood
 * forges. A slot shared by two keys only makes the second one tracked a packet early. */
#define GW_SIGHTINGS_ENTRIES (1 << 20)
#define GW_SIGHTING_UNIT_SHIFT 20

/* Value of gw_ports: a port is protected (limited) when the entry is non-zero. */
#define GW_PORT_PROTECTED 1

/* XDP attach modes as the loader records them in gw_loader. */
enum gw_xdp_mode {
	GW_XDP_MODE_NATIVE = 1,
	GW_XDP_MODE_GENERIC = 2,
	GW_XDP_MODE_AUTO = 3,     /* requested only: native preferred, generic accepted */
};

/* Written by the loader after a successful attach; read by status and the exporter. */
struct gw_loader_info {
	__u32 abi_version;
	__u32 xdp_mode;           /* enum gw_xdp_mode: the mode attached */
	__u32 ifindex;
	__u32 requested_mode;     /* enum gw_xdp_mode: the mode the operator asked for */
	__u64 attached_unix_ns;   /* wall clock of the last attach or program replacement */
	char ifname[16];
	__u64 program_digest;     /* of the object the program came from: a load of the same one re-applies in place */
};

/* Default map sizes; the loader may set others before the maps are first created. */
#define GW_SOURCES_DEFAULT_ENTRIES (1 << 20)
#define GW_SUBNETS_DEFAULT_ENTRIES (1 << 18)
#define GW_ALLOWLIST_DEFAULT_ENTRIES (1 << 16)
#define GW_BLOCKLIST_DEFAULT_ENTRIES (1 << 18)
#define GW_OFFENDERS_DEFAULT_ENTRIES 65536
#define GW_PORTS_ENTRIES 65536

#endif /* GATEWARDEN_ABI_H */
