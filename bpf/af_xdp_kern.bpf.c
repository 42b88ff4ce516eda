// SPDX-License-Identifier: GPL-2.0
/* advanced03's AF_XDP program: hand each frame to the AF_XDP socket bound to the
 * queue it arrived on, counting per queue. With every_other set, every second
 * frame of a queue goes to the kernel instead, as the tutorial's version does.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "af_xdp_common.h"

/* Set by xdpctl before loading. */
const volatile __u8 every_other = 0;
/* Unused: puts enum xsk_limits in the BTF the skeleton's types module is
 * generated from, so xdpctl's queue limit is this file's.
 */
const volatile enum xsk_limits xsk_limits_anchor = XSK_MAX_QUEUES;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, XSK_MAX_QUEUES);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xsk_queue_counts);
	__uint(max_entries, XSK_MAX_QUEUES);
} xsk_counts SEC(".maps");

/* Frames seen per queue for --every-other. Shared by all CPUs, so the split is
 * exact whichever CPU a frame arrives on.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XSK_MAX_QUEUES);
} xsk_alternate SEC(".maps");

/* Plain SEC("xdp"), not frags-aware, on purpose: a multi-buffer frame reaches
 * an AF_XDP socket only if it was bound with XDP_USE_SG, and `xdpctl afxdp`
 * binds without it (one 4 KiB UMEM frame per packet). The redirect would drop
 * such frames; the kernel's refusal to attach at a jumbo MTU says so up front.
 */
SEC("xdp")
int xdp_sock(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	struct xsk_queue_counts *counts;
	__u64 *seen;
	long action;

	counts = bpf_map_lookup_elem(&xsk_counts, &queue);
	if (!counts)
		return XDP_PASS;

	if (every_other) {
		seen = bpf_map_lookup_elem(&xsk_alternate, &queue);
		if (seen && (__sync_fetch_and_add(seen, 1) & 1)) {
			counts->passed++;
			return XDP_PASS;
		}
	}

	/* No socket on this queue: the frame goes to the kernel. */
	action = bpf_redirect_map(&xsks_map, queue, XDP_PASS);
	if (action == XDP_REDIRECT)
		counts->redirected++;
	else
		counts->passed++;
	return action;
}

char LICENSE[] SEC("license") = "GPL";
