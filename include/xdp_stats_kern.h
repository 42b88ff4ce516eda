/* SPDX-License-Identifier: GPL-2.0 */
/* BPF side of the per-action counters every xdpctl program keeps, and of
 * the sampling path `xdpctl sample` switches on to capture frames with
 * the program's verdict (off by default; built out with
 * -DXDP_STATS_NO_SAMPLING, as the bench's reference is).
 */
#ifndef XDPCTL_XDP_STATS_KERN_H
#define XDPCTL_XDP_STATS_KERN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "common_kern_user.h"
#include "sample_common.h"

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

#ifndef XDP_STATS_NO_SAMPLING
/* The switch: a global in a data section of its own, which libbpf makes a
 * one-entry array map (".data.xdpsample", pinned with the program's other
 * maps as _data_xdpsample). A global, not a map lookup: the off cost is one
 * load and one test.
 */
struct xdp_sample_ctl xdp_sample_ctl SEC(".data.xdpsample");

/* Sampled frames with their verdicts; sized once, at load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} xdp_samples SEC(".maps");

/* Where a record is assembled (too large for the stack), and the counts. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct verdict_scratch);
	__uint(max_entries, 1);
} xdp_sample_buf SEC(".maps");

/* Copy the frame, as the program leaves it, and its verdict to the ring
 * when the switch asks for this verdict and has not expired. Out of line:
 * the helper is inlined at every return, the copy needs to be there once.
 */
static __noinline int xdp_sample_verdict(struct xdp_md *ctx, __u32 action)
{
	struct xdp_sample_ctl *ctl = &xdp_sample_ctl;
	struct verdict_scratch *buf;
	__u64 len, cap, snaplen; /* 64-bit: clang bounds a zero-extended u32 badly */
	__u64 flags;
	__u32 zero = 0;

	if (!(ctl->verdicts & (1U << action)) || bpf_ktime_get_ns() > ctl->expiry_ns)
		return 0;
	buf = bpf_map_lookup_elem(&xdp_sample_buf, &zero);
	if (!buf)
		return 0;
	buf->counts.seen++;

	len = bpf_xdp_get_buff_len(ctx);
	snaplen = ctl->snaplen;
	cap = len < snaplen ? len : snaplen;
	if (cap == 0 || cap > SAMPLE_MAX_SNAPLEN)
		return 0;
	if (bpf_xdp_load_bytes(ctx, 0, buf->data, cap))
		return 0;
	buf->hdr.sample.tstamp_ns = bpf_ktime_get_ns();
	buf->hdr.sample.orig_len = len;
	buf->hdr.sample.cap_len = cap;
	buf->hdr.verdict = action;
	buf->hdr.ifindex = ctx->ingress_ifindex;
	buf->hdr.queue = ctx->rx_queue_index;
	buf->hdr.pad = 0;

	flags = bpf_ringbuf_query(&xdp_samples, BPF_RB_AVAIL_DATA) >= ctl->wakeup_bytes
		    ? BPF_RB_FORCE_WAKEUP
		    : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&xdp_samples, &buf->hdr, sizeof(buf->hdr) + cap, flags))
		buf->counts.lost++;
	return 0;
}
#endif

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

#ifndef XDP_STATS_NO_SAMPLING
	if (xdp_sample_ctl.enabled)
		xdp_sample_verdict(ctx, action);
#endif
	return action;
}

#endif /* XDPCTL_XDP_STATS_KERN_H */
