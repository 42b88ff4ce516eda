/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the packet samplers and `xdpctl sample` (tracing04): the
 * sampler program of its own, and the sampling path of the stats helper
 * every shipped program ends in (xdp_stats_kern.h).
 */
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

/* Per-CPU counters: frames the program saw, and samples lost for want of
 * room (a full ring or perf buffer).
 */
struct sample_counts {
	__u64 seen;
	__u64 lost;
};

/* The stats helper's sampling switch: the one entry of xdp_sample_ctl,
 * written by `xdpctl sample`. Off (enabled 0) costs one load per frame.
 */
struct xdp_sample_ctl {
	__u64 expiry_ns; /* bpf_ktime_get_ns() after which sampling stops by
			  * itself: a killed sampler leaves it on briefly */
	__u32 enabled;	 /* 0: off */
	__u32 verdicts;	 /* 1 << action for each verdict to sample */
	__u32 snaplen;	 /* bytes kept of each frame, at most SAMPLE_MAX_SNAPLEN */
	__u32 pad;	 /* keeps the struct free of holes */
};

/* What precedes the frame in each record of the xdp_samples perf buffers:
 * the sampler's header, the program's verdict and where the frame came in.
 */
struct verdict_hdr {
	struct sample_hdr sample;
	__u32 verdict; /* enum xdp_action the program returned */
	__u32 ifindex; /* the device it came in on */
	__u32 queue;   /* its receive queue */
	__u32 pad;
};

#endif
