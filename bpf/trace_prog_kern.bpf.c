// SPDX-License-Identifier: GPL-2.0
/* tracing01: count xdp:xdp_exception events per interface and XDP action. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "trace_common.h"

/* The record of xdp:xdp_exception, as events/xdp/xdp_exception/format
 * lays it out after the 8 bytes of common fields.
 */
struct xdp_exception_ctx {
	__u64 common;
	__s32 prog_id;
	__u32 act;
	__s32 ifindex;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct exception_key);
	__type(value, __u64);
	__uint(max_entries, 1024);
} exceptions SEC(".maps");

SEC("tracepoint/xdp/xdp_exception")
int trace_xdp_exception(struct xdp_exception_ctx *ctx)
{
	struct exception_key key = {.ifindex = ctx->ifindex, .action = ctx->act};
	__u64 one = 1;
	__u64 *count;

	count = bpf_map_lookup_elem(&exceptions, &key);
	if (count) {
		/* This CPU's own slot: no atomics needed. */
		(*count)++;
		return 0;
	}
	/* First event for the key; if another CPU created it meanwhile, the
	 * insert fails and the new entry takes the count instead.
	 */
	if (bpf_map_update_elem(&exceptions, &key, &one, BPF_NOEXIST)) {
		count = bpf_map_lookup_elem(&exceptions, &key);
		if (count)
			(*count)++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
