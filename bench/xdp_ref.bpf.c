// SPDX-License-Identifier: GPL-2.0
/* Reference programs for `make bench`: the work of bpf/xdp_prog_kern.bpf.c
 * written as plain, self-contained C (no shared helpers, nothing from include/),
 * plus a no-op program that only returns a verdict.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct ref_rec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ref_rec);
	__uint(max_entries, XDP_REDIRECT + 1);
} ref_stats SEC(".maps");

#define REF_PROG(name, verdict)                                                                    \
	SEC("xdp")                                                                                 \
	int name(struct xdp_md *ctx)                                                               \
	{                                                                                          \
		__u32 key = verdict;                                                               \
		struct ref_rec *rec = bpf_map_lookup_elem(&ref_stats, &key);                       \
		if (rec) {                                                                         \
			rec->packets++;                                                            \
			rec->bytes += ctx->data_end - ctx->data;                                   \
		}                                                                                  \
		return verdict;                                                                    \
	}

REF_PROG(ref_pass, XDP_PASS)
REF_PROG(ref_drop, XDP_DROP)
REF_PROG(ref_abort, XDP_ABORTED)

SEC("xdp")
int noop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
