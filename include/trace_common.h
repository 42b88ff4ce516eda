/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the tracepoint programs and xdpctl (tracing01-02). */
#ifndef XDPCTL_TRACE_COMMON_H
#define XDPCTL_TRACE_COMMON_H

#include <linux/types.h>

/* Interface names as the kernel keeps them (IFNAMSIZ). */
#define NETDEV_NAME_LEN 16

/* Key of the exceptions map: which namespace, which interface, which XDP
 * action. Interface indexes are per namespace, so the index alone would
 * put another namespace's events under this namespace's interface.
 */
struct exception_key {
	__u64 netns; /* the device's namespace: net_cookie, as SO_NETNS_COOKIE */
	__s32 ifindex;
	__u32 action;
};

/* Value of the exceptions map, per CPU: the events, and on the CPU that made
 * the entry the device's name then (other namespaces' indexes cannot be
 * looked up from user space).
 */
struct exception_count {
	__u64 count;
	char name[NETDEV_NAME_LEN];
};

/* Direction of a net:* event: netif_receive_skb is RX, net_dev_queue TX. */
enum netdev_dir {
	NETDEV_RX = 0,
	NETDEV_TX = 1,
};

/* Key of the netdev_stats map: one device (namespace and name), one
 * direction.
 */
struct netdev_key {
	__u64 netns;
	char name[NETDEV_NAME_LEN];
	enum netdev_dir dir; /* 4 bytes, as the __u32 it stands for */
	__u32 pad;	     /* zero: a hash key has no room for stray bytes */
};

struct netdev_counts {
	__u64 packets;
	__u64 bytes;
};

/* One event on the netdev_events ring buffer (trace netdev --events). */
struct netdev_event {
	__u64 skbaddr;
	__u64 netns;
	__u32 len;
	enum netdev_dir dir;
	char name[NETDEV_NAME_LEN];
};

/* trace monitor: what one xdp tracepoint saw, per CPU. */
struct monitor_rec {
	__u64 processed; /* packets handled (sent, enqueued, redirected) */
	__u64 dropped;	 /* packets lost */
	__u64 info;	 /* bulks (enqueue, xmit) or reschedules (kthread) */
	__u64 err;	 /* driver errors (devmap_xmit) */
};

/* Slots of redirect_errno: -err of xdp_redirect_err, 0 for out of range;
 * the generator's come after everyone else's.
 */
#define MONITOR_ERRNO_MAX 256
/* Whose frames a redirect or transmission carried: slots of redirect_ok,
 * redirect_err and devmap_xmit. The generator is xdpctl trafficgen, told by
 * its program's name (bpf/trafficgen.bpf.c).
 */
enum monitor_source {
	MONITOR_OTHERS = 0,
	MONITOR_GENERATOR = 1,
	MONITOR_SOURCES = 2, /* how many */
};
#define MONITOR_GENERATOR_NAME "xdp_trafficgen"
/* Slots of cpumap_enqueue: the target CPU. */
#define MONITOR_MAX_CPUS 256

#endif /* XDPCTL_TRACE_COMMON_H */
