/* SPDX-License-Identifier: Apache-2.0
 *
 * gatewarden_abi.h: the contract between the XDP program and user space.
 *
 * Every map key and value the program shares with the loader and the exporter is
 * declared here once. The kernel program includes it; the Swift side imports it
 * through the CGatewardenABI module, so the two can never drift apart.
 * Change a layout only together with GW_ABI_VERSION: pinned maps with an old
 * layout are refused by libbpf on reload instead of being misread.
 */
#ifndef GATEWARDEN_ABI_H
#define GATEWARDEN_ABI_H

#include <linux/types.h>

#define GW_ABI_VERSION 1

/* What the program did with a packet. */
enum gw_action {
	GW_ACTION_PASS = 0,
	GW_ACTION_DROP = 1,
	GW_ACTION_COUNT = 2,
};

/* Why it did it. Pass and drop share one list so one index names a counter. */
enum gw_reason {
	GW_REASON_WITHIN_LIMIT = 0, /* protected port, under every limit */
	GW_REASON_UNPROTECTED = 1,  /* IP traffic to a port we do not limit */
	GW_REASON_NOT_IP = 2,       /* ARP, LLDP, ...: not ours to judge */
	GW_REASON_MALFORMED = 3,    /* truncated or inconsistent headers */
	GW_REASON_ALLOWLIST = 4,
	GW_REASON_BLOCKLIST = 5,
	GW_REASON_RATE_IP = 6,
	GW_REASON_RATE_SUBNET = 7,
	GW_REASON_COUNT = 8,
};

/* Index into the gw_stats per-CPU array. */
#define GW_STATS_INDEX(action, reason) ((action) * GW_REASON_COUNT + (reason))
#define GW_STATS_ENTRIES (GW_ACTION_COUNT * GW_REASON_COUNT)

/* A packet and byte count; per-CPU maps hold one per CPU, user space sums them. */
struct gw_counter {
	__u64 packets;
	__u64 bytes;
};

/* A source address. IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one map serves both families. */
struct gw_source_key {
	__u8 addr[16];
};

/* Value of gw_ports: a port is protected (limited) when the entry is non-zero. */
#define GW_PORT_PROTECTED 1

/* XDP attach modes as the loader records them in gw_loader. */
enum gw_xdp_mode {
	GW_XDP_MODE_NATIVE = 1,
	GW_XDP_MODE_GENERIC = 2,
};

/* Written by the loader after a successful attach; read by status and the exporter. */
struct gw_loader_info {
	__u32 abi_version;
	__u32 xdp_mode;           /* enum gw_xdp_mode */
	__u32 ifindex;
	__u32 reserved;
	__u64 attached_unix_ns;   /* wall clock of the last attach or program replacement */
	char ifname[16];
};

/* Map sizes (defaults; the policy may lower or raise the source map). */
#define GW_SOURCES_DEFAULT_ENTRIES (1 << 20)
#define GW_PORTS_ENTRIES 65536

#endif /* GATEWARDEN_ABI_H */
