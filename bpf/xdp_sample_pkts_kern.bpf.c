// SPDX-License-Identifier: GPL-2.0
/* tracing04's packet sampler: copy the head of every frame, with its length and
 * a timestamp, to a ring buffer that `xdpctl sample` writes to a capture file.
 * Every frame is passed on.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sample_common.h"

/* Set by xdpctl before loading. */
const volatile __u32 snaplen = SAMPLE_MAX_SNAPLEN;
/* Wake the reader only once this much is waiting: a wakeup per sample costs
 * more than the sample itself. The reader also drains the ring on a timer.
 */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Unused: puts enum sample_limits in the BTF the skeleton's types module is
 * generated from, so xdpctl's largest snaplen is this file's.
 */
const volatile enum sample_limits sample_limits_anchor = SAMPLE_MAX_SNAPLEN;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* xdpctl sizes it before loading */
} samples SEC(".maps");

/* Where a sample is assembled: too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sample);
	__uint(max_entries, 1);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sample_counts);
	__uint(max_entries, 1);
} sample_stats SEC(".maps");

/* Frags-aware: a jumbo frame is sampled whole, its fragments copied too
 * (bpf_xdp_load_bytes reads across them), and orig_len is the whole frame.
 */
SEC("xdp.frags")
int xdp_sample(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 len, cap; /* 64-bit: clang-14 bounds a zero-extended copy of a u32 */
	struct sample_counts *counts;
	struct sample *s;
	__u64 flags;

	counts = bpf_map_lookup_elem(&sample_stats, &zero);
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!counts || !s)
		return XDP_PASS;
	counts->seen++;

	len = bpf_xdp_get_buff_len(ctx);
	cap = len < snaplen ? len : snaplen;
	if (cap == 0 || cap > SAMPLE_MAX_SNAPLEN)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, 0, s->data, cap))
		return XDP_PASS;
	s->hdr.tstamp_ns = bpf_ktime_get_ns();
	s->hdr.orig_len = len;
	s->hdr.cap_len = cap;

	flags = bpf_ringbuf_query(&samples, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&samples, s, sizeof(s->hdr) + cap, flags))
		counts->lost++;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
