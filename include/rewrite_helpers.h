/* SPDX-License-Identifier: GPL-2.0 */
/* Header rewriting for XDP programs (packet02-03): incremental checksums,
 * address swaps, VLAN tag push and pop.
 */
#ifndef XDPCTL_REWRITE_HELPERS_H
#define XDPCTL_REWRITE_HELPERS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "parsing_helpers.h"

/* Fold a 32-bit one's complement sum to 16 bits and complement it. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum += sum >> 16;
	return (__u16)~sum;
}

/* RFC 1624, eqn. 3: the checksum after one 16-bit word of the data it covers
 * changed from @from to @to. Byte order does not matter as long as all three
 * are as stored in the packet.
 */
static __always_inline void csum_replace2(__sum16 *sum, __be16 from, __be16 to)
{
	__u32 s = (__u16) ~*sum;

	s += (__u16)~from;
	s += to;
	*sum = csum_fold(s);
}

static __always_inline void swap_src_dst_mac(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Swapping addresses leaves every checksum that covers them unchanged. */
static __always_inline void swap_src_dst_ipv4(struct iphdr *iph)
{
	__be32 tmp = iph->saddr;

	iph->saddr = iph->daddr;
	iph->daddr = tmp;
}

static __always_inline void swap_src_dst_ipv6(struct ipv6hdr *ip6h)
{
	struct in6_addr tmp = ip6h->saddr;

	ip6h->saddr = ip6h->daddr;
	ip6h->daddr = tmp;
}

/* TTL minus one, with the header checksum fixed for the word that holds it. */
static __always_inline void ipv4_decrease_ttl(struct iphdr *iph)
{
	__be16 *word = (__be16 *)&iph->ttl; /* ttl and protocol */
	__be16 old = *word;

	iph->ttl--;
	csum_replace2(&iph->check, old, *word);
}

/* Remove the outer VLAN tag. Returns its VLAN id, or -1 if there is none or
 * the head cannot move. Invalidates every packet pointer the caller holds.
 */
static __always_inline int vlan_tag_pop(struct xdp_md *ctx, struct ethhdr *eth)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct vlan_hdr *vlh = (void *)(eth + 1);
	struct ethhdr eth_cpy;
	__be16 inner_proto;
	int vlid;

	if (!proto_is_vlan(eth->h_proto))
		return -1;
	if ((void *)(vlh + 1) > data_end)
		return -1;
	vlid = bpf_ntohs(vlh->h_vlan_TCI) & VLAN_VID_MASK;
	inner_proto = vlh->h_vlan_encapsulated_proto;
	__builtin_memcpy(&eth_cpy, eth, sizeof(eth_cpy));

	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*vlh)))
		return -1;
	eth = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if ((void *)(eth + 1) > data_end)
		return -1;

	__builtin_memcpy(eth, &eth_cpy, sizeof(*eth));
	eth->h_proto = inner_proto;
	return vlid;
}

/* Insert an 802.1Q tag with @vlid after the MAC addresses. Returns 0, or -1
 * if the head cannot move. Invalidates every packet pointer the caller holds.
 */
static __always_inline int vlan_tag_push(struct xdp_md *ctx, struct ethhdr *eth, int vlid)
{
	struct ethhdr eth_cpy;
	struct vlan_hdr *vlh;
	void *data_end;

	__builtin_memcpy(&eth_cpy, eth, sizeof(eth_cpy));
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*vlh)))
		return -1;
	eth = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	vlh = (void *)(eth + 1);
	if ((void *)(vlh + 1) > data_end)
		return -1;

	__builtin_memcpy(eth, &eth_cpy, sizeof(*eth));
	vlh->h_vlan_TCI = bpf_htons(vlid & VLAN_VID_MASK);
	vlh->h_vlan_encapsulated_proto = eth_cpy.h_proto;
	eth->h_proto = bpf_htons(ETH_P_8021Q);
	return 0;
}

#endif /* XDPCTL_REWRITE_HELPERS_H */
