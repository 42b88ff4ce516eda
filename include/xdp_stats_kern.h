/* SPDX-License-Identifier: GPL-2.0 */
/* BPF side of the per-action counters every xdpctl program keeps. */
#ifndef XDPCTL_XDP_STATS_KERN_H
#define XDPCTL_XDP_STATS_KERN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "common_kern_user.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	/* The key is an action, but a __u32: the kernel refuses array maps
	 * whose BTF key is not an integer (an enum key made libbpf create the
	 * map without BTF, and bpftool dumped it as raw bytes).
	 */
	__type(key, __u32);
	__type(value, struct datarec);
	__uint(max_entries, XDP_ACTION_MAX);
} xdp_stats_map SEC(".maps");

/* Count the packet under @action and return @action, so a program ends with
 * `return xdp_stats_record_action(ctx, verdict);`. An action the map has no
 * slot for is a bug in the caller: abort rather than pass silently.
 */
static __always_inline __u32 xdp_stats_record_action(struct xdp_md *ctx, __u32 action)
{
	/* A copy for the lookup: had &action escaped into the helper call, the
	 * compiler would reload the verdict from the stack instead of returning
	 * a constant.
	 */
	__u32 key = action;
	struct datarec *rec;

	if (action >= XDP_ACTION_MAX)
		return XDP_ABORTED;

	rec = bpf_map_lookup_elem(&xdp_stats_map, &key);
	if (!rec)
		return XDP_ABORTED;

	/* The slot is this CPU's own: no atomics needed. */
	rec->rx_packets++;
	/* The whole frame: a multi-buffer one is longer than data_end - data. */
	rec->rx_bytes += bpf_xdp_get_buff_len(ctx);
	return action;
}

#endif /* XDPCTL_XDP_STATS_KERN_H */
