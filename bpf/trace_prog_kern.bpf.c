// SPDX-License-Identifier: GPL-2.0
/* Tracepoint programs of `xdpctl trace`: tracing01's xdp:xdp_exception
 * counter, tracing02's monitor of every xdp tracepoint, and seed 002's net:*
 * device tracer.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "trace_common.h"

/* The few kernel fields read here, no more: CO-RE moves each read to where
 * this kernel's BTF puts the field.
 */
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct net {
	__u64 net_cookie;
};

struct net_device {
	char name[NETDEV_NAME_LEN];
	int ifindex;
	struct {
		struct net *net;
	} nd_net; /* possible_net_t */
};

struct sk_buff {
	struct net_device *dev;
};

struct bpf_prog_aux {
	char name[BPF_OBJ_NAME_LEN];
};

struct bpf_prog {
	struct bpf_prog_aux *aux;
};
#pragma clang attribute pop

/* The namespace `dev` lives in, as user space's SO_NETNS_COOKIE names it. */
static __always_inline __u64 netns_of(const struct net_device *dev)
{
	return BPF_CORE_READ(dev, nd_net.net, net_cookie);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct exception_key);
	__type(value, struct exception_count);
	__uint(max_entries, 1024);
} exceptions SEC(".maps");

/* A raw tracepoint, not tracepoint/xdp/xdp_exception: that record carries the
 * ifindex but not the namespace it belongs to. The raw arguments are
 * TP_PROTO(const struct net_device *dev, const struct bpf_prog *xdp, u32 act).
 */
SEC("raw_tp/xdp_exception")
int trace_xdp_exception(struct bpf_raw_tracepoint_args *ctx)
{
	const struct net_device *dev = (const void *)ctx->args[0];
	struct exception_key key = {
	    .netns = netns_of(dev),
	    .ifindex = BPF_CORE_READ(dev, ifindex),
	    .action = (__u32)ctx->args[2],
	};
	struct exception_count first = {.count = 1};
	struct exception_count *rec;

	rec = bpf_map_lookup_elem(&exceptions, &key);
	if (rec) {
		/* This CPU's own slot: no atomics needed. */
		rec->count++;
		return 0;
	}
	bpf_core_read_str(first.name, sizeof(first.name), &dev->name);
	/* First event for the key; if another CPU created it meanwhile, the
	 * insert fails and the new entry takes the count instead.
	 */
	if (bpf_map_update_elem(&exceptions, &key, &first, BPF_NOEXIST)) {
		rec = bpf_map_lookup_elem(&exceptions, &key);
		if (rec)
			rec->count++;
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

#define MONITOR_ARRAY(name, slots)                                                                 \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                           \
		__type(key, __u32);                                                                \
		__type(value, struct monitor_rec);                                                 \
		__uint(max_entries, slots);                                                        \
	} name SEC(".maps")

/* Redirects and device transmissions: slot MONITOR_OTHERS, or
 * MONITOR_GENERATOR for xdpctl trafficgen's own frames.
 */
MONITOR_ARRAY(redirect_ok, MONITOR_SOURCES);
MONITOR_ARRAY(redirect_err, MONITOR_SOURCES);
MONITOR_ARRAY(cpumap_enqueue, MONITOR_MAX_CPUS);
MONITOR_ARRAY(cpumap_kthread, 1);
MONITOR_ARRAY(devmap_xmit, MONITOR_SOURCES);

/* Redirect errors by errno, the generator's MONITOR_ERRNO_MAX slots on. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MONITOR_ERRNO_MAX *MONITOR_SOURCES);
} redirect_errno SEC(".maps");

/* Per CPU: the device the generator's last redirect came from, 0 if the last
 * redirect was anyone else's. A devmap flush runs on the CPU that queued the
 * frames, after their redirects: this tells whose frames it sends.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} generator_dev SEC(".maps");

static __always_inline struct monitor_rec *monitor_slot(void *map, __u32 key)
{
	return bpf_map_lookup_elem(map, &key);
}

/* Whether `prog` is xdpctl trafficgen's (bpf/trafficgen.bpf.c): its XDP_TX
 * frames leave through a redirect, which a live-frames test run makes of
 * XDP_TX, and would count as redirects of the traffic under test.
 */
static __always_inline int is_generator(const struct bpf_prog *prog)
{
	char name[BPF_OBJ_NAME_LEN] = {};
	const struct bpf_prog_aux *aux = BPF_CORE_READ(prog, aux);
	int i;

	if (bpf_core_read_str(name, sizeof(name), &aux->name) < 0)
		return 0;
#pragma unroll
	for (i = 0; i < sizeof(MONITOR_GENERATOR_NAME); i++)
		if (name[i] != MONITOR_GENERATOR_NAME[i])
			return 0;
	return 1;
}

static __always_inline int count_redirect(int err, __u32 source)
{
	struct monitor_rec *rec;
	__u32 errno_slot;
	__u64 *count;

	if (!err) {
		rec = monitor_slot(&redirect_ok, source);
		if (rec)
			rec->processed++;
		return 0;
	}
	rec = monitor_slot(&redirect_err, source);
	if (rec)
		rec->dropped++;
	errno_slot = -err;
	if (errno_slot >= MONITOR_ERRNO_MAX)
		errno_slot = 0;
	errno_slot += source * MONITOR_ERRNO_MAX;
	count = bpf_map_lookup_elem(&redirect_errno, &errno_slot);
	if (count)
		(*count)++;
	return 0;
}

/* Raw: the classic record carries a program id, not the program, whose
 * name tells the generator. The raw arguments are TP_PROTO(const struct
 * net_device *dev, const struct bpf_prog *xdp, const void *tgt, int err,
 * enum bpf_map_type map_type, u32 map_id, u32 index).
 */
static __always_inline int count_raw_redirect(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 source =
	    is_generator((const void *)ctx->args[1]) ? MONITOR_GENERATOR : MONITOR_OTHERS;
	__u32 zero = 0;
	__u64 *mark = bpf_map_lookup_elem(&generator_dev, &zero);

	if (mark)
		*mark = source == MONITOR_GENERATOR ? ctx->args[0] : 0;
	return count_redirect((int)ctx->args[3], source);
}

SEC("raw_tp/xdp_redirect")
int trace_xdp_redirect(struct bpf_raw_tracepoint_args *ctx)
{
	return count_raw_redirect(ctx);
}

SEC("raw_tp/xdp_redirect_err")
int trace_xdp_redirect_err(struct bpf_raw_tracepoint_args *ctx)
{
	return count_raw_redirect(ctx);
}

/* Gone from kernels since 6.x; xdpctl skips them where missing. */
SEC("tracepoint/xdp/xdp_redirect_map")
int trace_xdp_redirect_map(struct redirect_ctx *ctx)
{
	return count_redirect(ctx->err, MONITOR_OTHERS);
}

SEC("tracepoint/xdp/xdp_redirect_map_err")
int trace_xdp_redirect_map_err(struct redirect_ctx *ctx)
{
	return count_redirect(ctx->err, MONITOR_OTHERS);
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

/* Raw, to tell the generator's frames by their device: TP_PROTO(const
 * struct net_device *from_dev, const struct net_device *to_dev, int sent,
 * int drops, int err).
 */
SEC("raw_tp/xdp_devmap_xmit")
int trace_xdp_devmap_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0, source = MONITOR_OTHERS;
	__u64 *mark = bpf_map_lookup_elem(&generator_dev, &zero);
	struct monitor_rec *rec;
	int err = (int)ctx->args[4];

	if (mark && *mark && *mark == ctx->args[0])
		source = MONITOR_GENERATOR;
	rec = monitor_slot(&devmap_xmit, source);
	if (!rec)
		return 0;
	rec->processed += (int)ctx->args[2];
	rec->dropped += (int)ctx->args[3];
	rec->info++;
	if (err < 0)
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
/* Unused: the same for enum monitor_source, whose values user space reads. */
const volatile enum monitor_source monitor_source_layout = MONITOR_OTHERS;

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
	const struct sk_buff *skb;
	struct netdev_counts *counts;
	struct netdev_event *event;

	bpf_probe_read_kernel_str(key.name, sizeof(key.name),
				  (void *)ctx + (ctx->name_loc & 0xffff));
	if (filter_on && !name_matches(key.name))
		return 0;
	/* Names repeat across namespaces: the skb's device tells which. (The
	 * pointer is taken first: inside BPF_CORE_READ the record's own field
	 * would get a CO-RE relocation too.)
	 */
	skb = (const struct sk_buff *)(unsigned long)ctx->skbaddr;
	key.netns = BPF_CORE_READ(skb, dev, nd_net.net, net_cookie);
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
		event->netns = key.netns;
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
