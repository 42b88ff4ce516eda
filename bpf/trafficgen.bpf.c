// SPDX-License-Identifier: GPL-2.0
/* The frame source of `xdpctl trafficgen`. User space runs this program with
 * BPF_PROG_TEST_RUN in live-frames mode on a template UDP frame; XDP_TX sends
 * each frame out of the interface named in the run's context. With a port
 * range, every frame gets the next destination port of the range.
 */
#include <linux/bpf.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "rewrite_helpers.h"

/* Set by xdpctl before loading: where the UDP header starts, and the
 * destination ports to cycle through (port_count 0 or 1: a fixed port).
 * 32 bits: the whole range 0-65535 is 65536 ports.
 */
const volatile __u32 udp_offset = 0;
const volatile __u16 port_first = 0;
const volatile __u32 port_count = 0;

/* Frames handed out so far, and the next port's index in the range. One
 * generator runs one test run at a time, so plain counters are enough.
 */
__u64 frames_sent = 0;
__u32 port_next = 0;

/* Plain SEC("xdp"): never attached, so no MTU rule applies to it, and a
 * live-frames test run refuses frames beyond one linear buffer anyway.
 */
SEC("xdp")
int xdp_trafficgen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct udphdr *udp;
	__be16 port;
	__u32 next;

	frames_sent++;
	if (port_count < 2)
		return XDP_TX;

	/* udp_offset is at most a few dozen bytes: bound it for the verifier. */
	udp = data + (udp_offset & 0xff);
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;

	next = port_next;
	port_next = next + 1 >= port_count ? 0 : next + 1;
	port = bpf_htons((__u16)(port_first + next));

	/* The page may come back recycled with the last port still in it, or
	 * freshly copied from the template: update from whatever is there.
	 */
	if (udp->check) {
		csum_replace2(&udp->check, udp->dest, port);
		/* 0 would mean "no checksum"; 0xffff is the same sum. */
		if (!udp->check)
			udp->check = 0xffff;
	}
	udp->dest = port;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
