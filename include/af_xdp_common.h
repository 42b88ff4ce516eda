/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the AF_XDP redirect program and `xdpctl afxdp` (advanced03). */
#ifndef XDPCTL_AF_XDP_COMMON_H
#define XDPCTL_AF_XDP_COMMON_H

#include <linux/types.h>

/* Receive queues the program can serve: the XSKMAP and counters are indexed by
 * queue. An enum, not a #define, so the BTF (and xdpctl's skeleton) carries it.
 */
enum xsk_limits {
	XSK_MAX_QUEUES = 64,
};

/* Per-queue, per-CPU counters of the redirect program. */
struct xsk_queue_counts {
	__u64 redirected; /* handed to the AF_XDP socket bound to the queue */
	__u64 passed;	  /* left to the kernel: --every-other, or no socket bound */
};

#endif
