/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the packet sampler and `xdpctl sample` (tracing04). */
#ifndef XDPCTL_SAMPLE_COMMON_H
#define XDPCTL_SAMPLE_COMMON_H

#include <linux/types.h>

/* Largest sample: a 9000-byte jumbo frame with its Ethernet and VLAN headers.
 * An enum, not a #define, so the BTF (and xdpctl's skeleton) carries it.
 */
enum sample_limits {
	SAMPLE_MAX_SNAPLEN = 9216,
};

/* What precedes the packet bytes in each ring buffer record. */
struct sample_hdr {
	__u64 tstamp_ns; /* CLOCK_MONOTONIC, turned into wall time in user space */
	__u32 orig_len;	 /* the whole frame, fragments included */
	__u32 cap_len;	 /* bytes that follow: min(orig_len, snaplen) */
};

/* One record as the program builds it before copying it to the ring. */
struct sample {
	struct sample_hdr hdr;
	__u8 data[SAMPLE_MAX_SNAPLEN];
};

/* Per-CPU counters: frames the program saw, and samples the full ring lost. */
struct sample_counts {
	__u64 seen;
	__u64 lost;
};

#endif
