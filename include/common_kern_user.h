/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the BPF programs and xdpctl; Rust sees them through the skeleton's BTF. */
#ifndef XDPCTL_COMMON_KERN_USER_H
#define XDPCTL_COMMON_KERN_USER_H

#include <linux/types.h>
#include <linux/bpf.h>

/* One slot per enum xdp_action value: ABORTED, DROP, PASS, TX, REDIRECT. */
#ifndef XDP_ACTION_MAX
#define XDP_ACTION_MAX (XDP_REDIRECT + 1)
#endif

/* Value of xdp_stats_map: what one XDP action saw, per CPU. */
struct datarec {
	__u64 rx_packets;
	__u64 rx_bytes;
};

/* Value of xdp_redirect's one-entry redirect_target map: where every packet
 * goes and the destination MAC it gets; ifindex 0 means "not configured".
 */
struct redirect_target {
	__u32 ifindex;
	__u8 dest_mac[6];
	__u8 pad[2];
};

#endif /* XDPCTL_COMMON_KERN_USER_H */
