// SPDX-License-Identifier: GPL-2.0
/* Tracepoint programs of `xdpctl trace`: tracing01's xdp:xdp_exception
 * counter, tracing02's monitor of every xdp tracepoint, and seed 002's net:*
 * device tracer.
 */
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

/* tracing02: the records of the other xdp tracepoints, as their format files
 * lay them out after the 8 bytes of common fields.
 */
struct redirect_ctx {
	__u64 common;
	__s32 prog_id;
	__u32 act;
	__s32 ifindex;
	__s32 err;
	__s32 to_ifindex;
	__u32 map_id;
	__s32 map_index;
};

struct cpumap_enqueue_ctx {
	__u64 common;
	__s32 map_id;
	__u32 act;
	__s32 cpu;
	__u32 drops;
	__u32 processed;
	__s32 to_cpu;
};

struct cpumap_kthread_ctx {
	__u64 common;
	__s32 map_id;
	__u32 act;
	__s32 cpu;
	__u32 drops;
	__u32 processed;
	__s32 sched;
};

struct devmap_xmit_ctx {
	__u64 common;
	__s32 from_ifindex;
	__u32 act;
	__s32 to_ifindex;
	__s32 drops;
	__s32 sent;
	__s32 err;
};

#define MONITOR_ARRAY(name, slots)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                           \
		__type(key, __u32);                                                                \
		__type(value, struct monitor_rec);                                                 \
		__uint(max_entries, slots);                                                        \
	} name SEC(".maps")

MONITOR_ARRAY(redirect_ok, 1);
MONITOR_ARRAY(redirect_err, 1);
MONITOR_ARRAY(cpumap_enqueue, MONITOR_MAX_CPUS);
MONITOR_ARRAY(cpumap_kthread, 1);
MONITOR_ARRAY(devmap_xmit, 1);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MONITOR_ERRNO_MAX);
} redirect_errno SEC(".maps");

static __always_inline struct monitor_rec *monitor_slot(void *map, __u32 key)
{
	return bpf_map_lookup_elem(map, &key);
}

static __always_inline int count_redirect(struct redirect_ctx *ctx)
{
	struct monitor_rec *rec;
	__u32 errno_slot;
	__u64 *count;

	if (!ctx->err) {
		rec = monitor_slot(&redirect_ok, 0);
		if (rec)
			rec->processed++;
		return 0;
	}
	rec = monitor_slot(&redirect_err, 0);
	if (rec)
		rec->dropped++;
	errno_slot = -ctx->err;
	if (errno_slot >= MONITOR_ERRNO_MAX)
		errno_slot = 0;
	count = bpf_map_lookup_elem(&redirect_errno, &errno_slot);
	if (count)
		(*count)++;
	return 0;
}

SEC("tracepoint/xdp/xdp_redirect")
int trace_xdp_redirect(struct redirect_ctx *ctx)
{
	return count_redirect(ctx);
}

SEC("tracepoint/xdp/xdp_redirect_err")
int trace_xdp_redirect_err(struct redirect_ctx *ctx)
{
	return count_redirect(ctx);
}

/* Gone from kernels since 6.x; xdpctl skips them where missing. */
SEC("tracepoint/xdp/xdp_redirect_map")
int trace_xdp_redirect_map(struct redirect_ctx *ctx)
{
	return count_redirect(ctx);
}

SEC("tracepoint/xdp/xdp_redirect_map_err")
int trace_xdp_redirect_map_err(struct redirect_ctx *ctx)
{
	return count_redirect(ctx);
}

SEC("tracepoint/xdp/xdp_cpumap_enqueue")
int trace_xdp_cpumap_enqueue(struct cpumap_enqueue_ctx *ctx)
{
	struct monitor_rec *rec;
	__u32 to_cpu = ctx->to_cpu;

	if (to_cpu >= MONITOR_MAX_CPUS)
		return 0;
	rec = monitor_slot(&cpumap_enqueue, to_cpu);
	if (!rec)
		return 0;
	rec->processed += ctx->processed;
	rec->dropped += ctx->drops;
	/* One bulk per event, for the average bulk size. */
	if (ctx->processed)
		rec->info++;
	return 0;
}

SEC("tracepoint/xdp/xdp_cpumap_kthread")
int trace_xdp_cpumap_kthread(struct cpumap_kthread_ctx *ctx)
{
	struct monitor_rec *rec = monitor_slot(&cpumap_kthread, 0);

	if (!rec)
		return 0;
	rec->processed += ctx->processed;
	rec->dropped += ctx->drops;
	if (ctx->sched)
		rec->info++;
	return 0;
}

SEC("tracepoint/xdp/xdp_devmap_xmit")
int trace_xdp_devmap_xmit(struct devmap_xmit_ctx *ctx)
{
	struct monitor_rec *rec = monitor_slot(&devmap_xmit, 0);

	if (!rec)
		return 0;
	rec->processed += ctx->sent;
	rec->dropped += ctx->drops;
	rec->info++;
	if (ctx->err < 0)
		rec->err++;
	return 0;
}

/* seed 002: net:net_dev_queue and net:netif_receive_skb share this record
 * layout (events/net/<name>/format), after 8 bytes of common fields.
 */
struct netdev_ctx {
	__u64 common;
	__u64 skbaddr;
	__u32 len;
	__u32 name_loc; /* __data_loc char[]: offset in the low 16 bits */
};

/* Set by xdpctl before load. */
const volatile __u8 filter_on = 0;
const volatile char filter_name[NETDEV_NAME_LEN] = {};
const volatile __u8 emit_events = 0;
/* Unused: a ring buffer carries no type, so this puts struct netdev_event in
 * the BTF the skeleton's types module is generated from.
 */
const volatile struct netdev_event netdev_event_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct netdev_key);
	__type(value, struct netdev_counts);
	__uint(max_entries, 1024);
} netdev_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} netdev_events SEC(".maps");

static __always_inline int name_matches(const char *name)
{
	int i;

#pragma unroll
	for (i = 0; i < NETDEV_NAME_LEN; i++) {
		if (name[i] != filter_name[i])
			return 0;
		if (!name[i])
			break;
	}
	return 1;
}

SEC("tracepoint")
int trace_netdev(struct netdev_ctx *ctx)
{
	struct netdev_key key = {};
	struct netdev_counts *counts;
	struct netdev_event *event;

	bpf_probe_read_kernel_str(key.name, sizeof(key.name),
				  (void *)ctx + (ctx->name_loc & 0xffff));
	if (filter_on && !name_matches(key.name))
		return 0;
	/* Each attachment carries its direction as the BPF cookie: the
	 * record's common_type is overwritten before a program sees it.
	 */
	key.dir = bpf_get_attach_cookie(ctx) == NETDEV_TX ? NETDEV_TX : NETDEV_RX;

	if (emit_events) {
		/* Dropped when user space falls behind: a tracer must not stall. */
		event = bpf_ringbuf_reserve(&netdev_events, sizeof(*event), 0);
		if (!event)
			return 0;
		event->skbaddr = ctx->skbaddr;
		event->len = ctx->len;
		event->dir = key.dir;
		__builtin_memcpy(event->name, key.name, sizeof(event->name));
		bpf_ringbuf_submit(event, 0);
		return 0;
	}

	counts = bpf_map_lookup_elem(&netdev_stats, &key);
	if (!counts) {
		struct netdev_counts first = {.packets = 1, .bytes = ctx->len};

		/* Lost the race to create it: count in the winner's entry. */
		if (!bpf_map_update_elem(&netdev_stats, &key, &first, BPF_NOEXIST))
			return 0;
		counts = bpf_map_lookup_elem(&netdev_stats, &key);
		if (!counts)
			return 0;
	}
	counts->packets++;
	counts->bytes += ctx->len;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
