// SPDX-License-Identifier: GPL-2.0
/* Every XDP program `xdpctl load` ships (basic02-04, packet01-03). Each one
 * counts its verdict per action in xdp_stats_map.
 *
 * Shared rule of the parsing programs: a frame too short for its Ethernet
 * header and VLAN tags is malformed and gets XDP_ABORTED (visible on the
 * xdp:xdp_exception tracepoint); anything cut short further in is passed on
 * untouched for the kernel to judge.
 *
 * Every program is frags-aware (SEC("xdp.frags")), so it attaches in native
 * mode where the MTU needs multi-buffer frames (veth above about 3.5 KB).
 * The stats count the whole frame, fragments included. The parsers read the
 * linear part only (data..data_end: the first 3.5 KB or so on a veth and in
 * a test run), so a header reaching past it counts as cut short. Rewrites
 * touch headers only and update checksums incrementally: the payload in the
 * fragments is never needed. XDP_TX and redirects send a multi-buffer frame
 * whole where the device can (a veth, to a peer that runs NAPI, as for any
 * XDP_TX or redirected frame); a device that cannot drops it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "common_kern_user.h"
#include "parsing_helpers.h"
#include "rewrite_helpers.h"
#include "xdp_stats_kern.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#ifndef XDP_STATS_NO_SAMPLING
/* Unused: a perf buffer record carries no type and the helper builds its
 * header on the stack, so this puts struct verdict_hdr in the BTF the
 * skeleton's types module is generated from.
 */
const volatile struct verdict_hdr verdict_hdr_layout = {};
#endif

/* Version, traffic class and flow label are the first 32 bits. */
#define IPV6_FLOWINFO_MASK bpf_htonl(0x0fffffff)

/* xdp_redirect: the one place every packet goes, set by `xdpctl redirect`. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct redirect_target);
	__uint(max_entries, 1);
} redirect_target SEC(".maps");

/* xdp_redirect_map: egress device in slot 0, set by `xdpctl redirect`. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} tx_port SEC(".maps");

/* xdp_redirect_map: destination MAC to write, by source MAC. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, ETH_ALEN);
	__uint(value_size, ETH_ALEN);
	__uint(max_entries, 256);
} redirect_params SEC(".maps");

SEC("xdp.frags")
int xdp_pass(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_PASS);
}

SEC("xdp.frags")
int xdp_drop(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_DROP);
}

SEC("xdp.frags")
int xdp_abort(struct xdp_md *ctx)
{
	return xdp_stats_record_action(ctx, XDP_ABORTED);
}

/* packet01: drop ICMP and ICMPv6 echo requests with an even sequence number. */
SEC("xdp.frags")
int xdp_parser(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct icmp_echo_hdr *icmph;
	struct ipv6hdr *ip6h;
	struct ethhdr *eth;
	struct iphdr *iph;
	int eth_type, request;

	eth_type = parse_ethhdr_vlan(&nh, data_end, &eth, NULL);
	if (eth_type < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	if (eth_type == bpf_htons(ETH_P_IP)) {
		if (parse_iphdr(&nh, data_end, &iph) != IPPROTO_ICMP || ipv4_is_later_fragment(iph))
			goto pass;
		request = ICMP_ECHO;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		if (parse_ip6hdr(&nh, data_end, &ip6h) != IPPROTO_ICMPV6)
			goto pass;
		request = ICMPV6_ECHO_REQUEST;
	} else {
		goto pass;
	}
	/* One parse after the branches: parsing in each, clang derives the
	 * header pointer afresh and the verifier loses its bounds.
	 */
	if (parse_icmp_echo(&nh, data_end, &icmph) != request)
		goto pass;

	if (bpf_ntohs(icmph->seq) % 2 == 0)
		return xdp_stats_record_action(ctx, XDP_DROP);
pass:
	return xdp_stats_record_action(ctx, XDP_PASS);
}

/* Destination port minus one, checksum fixed up. A zero UDP checksum over
 * IPv4 means "none" and stays zero; a computed zero is sent as 0xffff.
 */
static __always_inline void port_minus_one(__be16 *port, __sum16 *check, int is_udp, int is_ipv4)
{
	__be16 old = *port;

	*port = bpf_htons(bpf_ntohs(old) - 1);
	if (is_udp && is_ipv4 && !*check)
		return;
	csum_replace2(check, old, *port);
	if (is_udp && !*check)
		*check = 0xffff;
}

/* packet02: UDP and TCP destination port minus one, IPv4 and IPv6. */
SEC("xdp.frags")
int xdp_port_rewrite(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct ipv6hdr *ip6h;
	struct ethhdr *eth;
	struct udphdr *udph;
	struct tcphdr *tcph;
	struct iphdr *iph;
	int eth_type, ip_type, is_ipv4;

	eth_type = parse_ethhdr_vlan(&nh, data_end, &eth, NULL);
	if (eth_type < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	is_ipv4 = eth_type == bpf_htons(ETH_P_IP);
	if (is_ipv4) {
		ip_type = parse_iphdr(&nh, data_end, &iph);
		/* Later fragments start with payload, not with ports. */
		if (ip_type < 0 || ipv4_is_later_fragment(iph))
			goto pass;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		ip_type = parse_ip6hdr(&nh, data_end, &ip6h);
	} else {
		goto pass;
	}

	if (ip_type == IPPROTO_UDP) {
		if (parse_udphdr(&nh, data_end, &udph) == 0)
			port_minus_one(&udph->dest, &udph->check, 1, is_ipv4);
	} else if (ip_type == IPPROTO_TCP) {
		if (parse_tcphdr(&nh, data_end, &tcph) == 0)
			port_minus_one(&tcph->dest, &tcph->check, 0, is_ipv4);
	}
pass:
	return xdp_stats_record_action(ctx, XDP_PASS);
}

/* packet02: pop the outer VLAN tag if there is one, else push VLAN id 1. */
SEC("xdp.frags")
int xdp_vlan_swap(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct ethhdr *eth;
	int err;

	if (parse_ethhdr_vlan(&nh, data_end, &eth, NULL) < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	if (proto_is_vlan(eth->h_proto))
		err = vlan_tag_pop(ctx, eth) < 0;
	else
		err = vlan_tag_push(ctx, eth, 1) < 0;
	/* Only a head that cannot move fails here: the frame is intact. */
	return xdp_stats_record_action(ctx, err ? XDP_ABORTED : XDP_PASS);
}

static __always_inline int ipv4_is_unicast(__be32 addr)
{
	__u32 a = bpf_ntohl(addr);

	return (a & 0xf0000000) != 0xe0000000 && a != 0xffffffff;
}

/* packet03: answer ICMP and ICMPv6 echo requests from XDP. Requests to a
 * multicast or broadcast MAC or IP address, and fragments, are left to the
 * kernel: a reply from a group address, or to one fragment, would be wrong.
 */
SEC("xdp.frags")
int xdp_icmp_echo(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct icmp_echo_hdr *icmph;
	struct ipv6hdr *ip6h = NULL;
	struct ethhdr *eth;
	struct iphdr *iph = NULL;
	int eth_type, request;
	__be16 old_word;
	__u8 reply;

	eth_type = parse_ethhdr_vlan(&nh, data_end, &eth, NULL);
	if (eth_type < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);
	/* The reply's source MAC is the request's destination. */
	if (eth_addr_is_group(eth->h_dest))
		goto pass;

	if (eth_type == bpf_htons(ETH_P_IP)) {
		if (parse_iphdr(&nh, data_end, &iph) != IPPROTO_ICMP || ipv4_is_fragment(iph) ||
		    !ipv4_is_unicast(iph->daddr))
			goto pass;
		request = ICMP_ECHO;
		reply = ICMP_ECHOREPLY;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		if (parse_ip6hdr(&nh, data_end, &ip6h) != IPPROTO_ICMPV6 ||
		    ip6h->daddr.in6_u.u6_addr8[0] == 0xff)
			goto pass;
		request = ICMPV6_ECHO_REQUEST;
		reply = ICMPV6_ECHO_REPLY;
	} else {
		goto pass;
	}
	if (parse_icmp_echo(&nh, data_end, &icmph) != request)
		goto pass;

	/* By pointer, not by eth_type: the verifier follows known pointers
	 * down each path, a re-read protocol it would not.
	 */
	if (iph)
		swap_src_dst_ipv4(iph);
	else if (ip6h)
		swap_src_dst_ipv6(ip6h);
	swap_src_dst_mac(eth);
	/* Type and code share the first checksummed word. */
	old_word = *(__be16 *)icmph;
	icmph->type = reply;
	csum_replace2(&icmph->cksum, old_word, *(__be16 *)icmph);
	return xdp_stats_record_action(ctx, XDP_TX);
pass:
	return xdp_stats_record_action(ctx, XDP_PASS);
}

/* packet03: send every frame out of one configured device, to one MAC. */
SEC("xdp.frags")
int xdp_redirect(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct redirect_target *target;
	struct ethhdr *eth;
	__u32 key = 0;

	if (parse_ethhdr(&nh, data_end, &eth) < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	target = bpf_map_lookup_elem(&redirect_target, &key);
	if (!target || !target->ifindex)
		return xdp_stats_record_action(ctx, XDP_PASS);

	__builtin_memcpy(eth->h_dest, target->dest_mac, ETH_ALEN);
	return xdp_stats_record_action(ctx, bpf_redirect(target->ifindex, 0));
}

/* packet03: frames from a known source MAC get their destination MAC and
 * leave through tx_port; the rest, and all while tx_port is empty, pass.
 */
SEC("xdp.frags")
int xdp_redirect_map(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct ethhdr *eth;
	__u8 *dest;
	long action;

	if (parse_ethhdr(&nh, data_end, &eth) < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	dest = bpf_map_lookup_elem(&redirect_params, eth->h_source);
	if (!dest)
		return xdp_stats_record_action(ctx, XDP_PASS);

	action = bpf_redirect_map(&tx_port, 0, XDP_PASS);
	if (action == XDP_REDIRECT)
		__builtin_memcpy(eth->h_dest, dest, ETH_ALEN);
	return xdp_stats_record_action(ctx, action);
}

/* packet03 solution: forward IPv4 and IPv6 by the kernel's FIB and
 * neighbour table. What the kernel must handle (no neighbour yet, MTU,
 * forwarding off, local delivery, TTL running out) is passed to it.
 */
SEC("xdp.frags")
int xdp_router(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct bpf_fib_lookup fib = {};
	struct ipv6hdr *ip6h = NULL;
	struct iphdr *iph = NULL;
	struct ethhdr *eth;
	int eth_type;
	long rc;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);
	/* Tagged frames belong to VLAN devices, which the kernel routes for. */
	if (proto_is_vlan(eth->h_proto))
		goto pass;

	if (eth_type == bpf_htons(ETH_P_IP)) {
		if (parse_iphdr(&nh, data_end, &iph) < 0 || iph->ttl <= 1)
			goto pass;
		fib.family = AF_INET;
		fib.tos = iph->tos;
		fib.l4_protocol = iph->protocol;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		if (parse_ip6hdr(&nh, data_end, &ip6h) < 0 || ip6h->hop_limit <= 1)
			goto pass;
		fib.family = AF_INET6;
		fib.flowinfo = *(__be32 *)ip6h & IPV6_FLOWINFO_MASK;
		fib.l4_protocol = ip6h->nexthdr;
		/* The MTU check wants the whole packet, header included. */
		fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	} else {
		goto pass;
	}
	fib.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		if (iph)
			ipv4_decrease_ttl(iph);
		else if (ip6h)
			ip6h->hop_limit--;
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return xdp_stats_record_action(ctx, bpf_redirect(fib.ifindex, 0));
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return xdp_stats_record_action(ctx, XDP_DROP);
	default:
		/* NOT_FWDED, FWD_DISABLED, UNSUPP_LWT, NO_NEIGH, FRAG_NEEDED */
		break;
	}
pass:
	return xdp_stats_record_action(ctx, XDP_PASS);
}

/* A MAC as one number for bpf_printk, which has no %pM: the first octet in
 * the most significant of the six low bytes. `xdpctl trace printk` turns it
 * back into aa:bb:cc:dd:ee:ff.
 */
static __always_inline __u64 mac_to_u64(const __u8 *mac)
{
	__u64 u = 0;
	int i;

#pragma unroll
	for (i = 0; i < ETH_ALEN; i++)
		u = u << 8 | mac[i];
	return u;
}

/* tracing03: log each frame's interface, MACs and protocol to the trace
 * buffer, and pass it. The leading "xdp_printk" tells `xdpctl trace printk`
 * these lines from everyone else's in the one shared buffer.
 */
SEC("xdp.frags")
int xdp_printk(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = (void *)(long)ctx->data};
	struct ethhdr *eth;

	if (parse_ethhdr(&nh, data_end, &eth) < 0)
		return xdp_stats_record_action(ctx, XDP_ABORTED);

	bpf_printk("xdp_printk ifindex %u src: %llu dst: %llu proto: %u", ctx->ingress_ifindex,
		   mac_to_u64(eth->h_source), mac_to_u64(eth->h_dest), bpf_ntohs(eth->h_proto));
	return xdp_stats_record_action(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
