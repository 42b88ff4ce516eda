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

/* Sampled frames with their verdicts, one perf buffer per CPU. The
 * buffers are the sampler's: it opens them for the capture and they go
 * with its fd, so a program nobody captures through holds no buffer.
 * max_entries 0: libbpf makes one entry per possible CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xdp_samples SEC(".maps");

/* Frames whose verdict was sampled, and records no buffer had room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sample_counts);
	__uint(max_entries, 1);
} xdp_sample_counts SEC(".maps");

/* Send the frame, as the program leaves it, and its verdict to this CPU's
 * buffer when the switch asks for this verdict and has not expired; return
 * the verdict. The kernel copies the frame (fragments too) straight from
 * the packet: no buffer to assemble the record in. Out of line: the helper
 * is inlined at every return, the copy needs to be there once.
 */
static __noinline __u32 xdp_sample_verdict(struct xdp_md *ctx, __u32 action)
{
	struct xdp_sample_ctl *ctl = &xdp_sample_ctl;
	struct sample_counts *counts;
	struct verdict_hdr hdr;
	__u64 len, cap, snaplen; /* 64-bit: clang bounds a zero-extended u32 badly */
	__u32 zero = 0;

	/* Opaque to the caller: else clang sees the verdict come back and
	 * keeps its own copy alive across the call, in a register the JIT
	 * then saves and restores on every frame.
	 */
	asm volatile("" : "+r"(action));
	if (!(ctl->verdicts & (1U << action)) || bpf_ktime_get_ns() > ctl->expiry_ns)
		return action;
	counts = bpf_map_lookup_elem(&xdp_sample_counts, &zero);
	if (!counts)
		return action;
	counts->seen++;

	len = bpf_xdp_get_buff_len(ctx);
	snaplen = ctl->snaplen;
	cap = len < snaplen ? len : snaplen;
	if (cap == 0 || cap > SAMPLE_MAX_SNAPLEN)
		return action;
	hdr.sample.tstamp_ns = bpf_ktime_get_ns();
	hdr.sample.orig_len = len;
	hdr.sample.cap_len = cap;
	hdr.verdict = action;
	hdr.ifindex = ctx->ingress_ifindex;
	hdr.queue = ctx->rx_queue_index;
	hdr.pad = 0;
	/* The upper 32 bits of the flags: frame bytes the kernel appends. */
	if (bpf_perf_event_output(ctx, &xdp_samples, cap << 32 | BPF_F_CURRENT_CPU, &hdr,
				  sizeof(hdr)))
		counts->lost++;
	return action;
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
	/* The verdict comes back from the call: nothing need live across it. */
	if (xdp_sample_ctl.enabled)
		return xdp_sample_verdict(ctx, action);
#endif
	return action;
}

#endif /* XDPCTL_XDP_STATS_KERN_H */
