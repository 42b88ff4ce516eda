// SPDX-License-Identifier: GPL-2.0
/* basic02-04: one program per verdict, each counted per action in xdp_stats_map. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdp_stats_kern.h"

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_PASS);
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_DROP);
}

SEC("xdp")
int xdp_abort(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_ABORTED);
}

char LICENSE[] SEC("license") = "GPL";
