/* SPDX-License-Identifier: GPL-2.0 */
/* Bounds-checked header parsing for XDP programs (packet01).
 *
 * One cursor walks the frame; each parse_* function checks that its header
 * fits before data_end, moves the cursor past it and returns what comes next.
 * A header that does not fit returns -1 and leaves the cursor where it was.
 */
#ifndef XDPCTL_PARSING_HELPERS_H
#define XDPCTL_PARSING_HELPERS_H

#include <linux/types.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct hdr_cursor {
	void *pos;
};

/* 802.1Q / 802.1ad tag, after the MAC addresses. */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

#ifndef VLAN_VID_MASK
#define VLAN_VID_MASK 0x0fff
#endif

/* Tags parsed before giving up: the outer (service) and inner (customer). */
#define VLAN_MAX_DEPTH 2

struct collect_vlans {
	__u16 id[VLAN_MAX_DEPTH];
	int depth;
};

/* ICMP and ICMPv6 echo messages share this layout. */
struct icmp_echo_hdr {
	__u8 type;
	__u8 code;
	__sum16 cksum;
	__be16 id;
	__be16 seq;
};

/* <linux/icmp.h> drags in libc headers; these two are all we need. */
#ifndef ICMP_ECHOREPLY
#define ICMP_ECHOREPLY 0
#endif
#ifndef ICMP_ECHO
#define ICMP_ECHO 8
#endif

/* IPv4 "more fragments" flag and fragment offset, in host order. */
#define IPV4_MF	      0x2000
#define IPV4_FRAG_OFF 0x1fff

static __always_inline int proto_is_vlan(__be16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD);
}

/* Ethernet header and up to VLAN_MAX_DEPTH tags. Returns the protocol that
 * follows them (network order; still a VLAN type if there were more tags),
 * or -1 if the frame ends inside them. @vlans may be NULL.
 */
static __always_inline int parse_ethhdr_vlan(struct hdr_cursor *nh, void *data_end,
					     struct ethhdr **ethhdr, struct collect_vlans *vlans)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	__be16 h_proto;
	void *pos;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	h_proto = eth->h_proto;
	pos = eth + 1;

#pragma unroll
	for (i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (!proto_is_vlan(h_proto))
			break;
		vlh = pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		h_proto = vlh->h_vlan_encapsulated_proto;
		if (vlans) {
			vlans->id[i] = bpf_ntohs(vlh->h_vlan_TCI) & VLAN_VID_MASK;
			vlans->depth = i + 1;
		}
		pos = vlh + 1;
	}

	nh->pos = pos;
	*ethhdr = eth;
	return h_proto;
}

/* A group MAC (multicast or broadcast) has the I/G bit, the lowest bit of its
 * first octet, set. Such an address names no single station, so it is never
 * a source.
 */
static __always_inline int eth_addr_is_group(const __u8 *addr)
{
	return addr[0] & 0x01;
}

static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
{
	return parse_ethhdr_vlan(nh, data_end, ethhdr, NULL);
}

/* IPv4 header with its options. Returns the L4 protocol, or -1 if the header
 * is cut short or claims fewer than 20 bytes.
 */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;

	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/* True for the second and later fragments, which carry no L4 header. */
static __always_inline int ipv4_is_later_fragment(const struct iphdr *iph)
{
	return (bpf_ntohs(iph->frag_off) & IPV4_FRAG_OFF) != 0;
}

static __always_inline int ipv4_is_fragment(const struct iphdr *iph)
{
	return (bpf_ntohs(iph->frag_off) & (IPV4_MF | IPV4_FRAG_OFF)) != 0;
}

/* Fixed IPv6 header. Returns its next header (extension headers are not
 * skipped: a packet that has them is not one the programs rewrite).
 */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return -1;

	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/* ICMP or ICMPv6 echo header (8 bytes). Returns the message type. */
static __always_inline int parse_icmp_echo(struct hdr_cursor *nh, void *data_end,
					   struct icmp_echo_hdr **icmphdr)
{
	struct icmp_echo_hdr *h = nh->pos;

	if ((void *)(h + 1) > data_end)
		return -1;

	nh->pos = h + 1;
	*icmphdr = h;
	return h->type;
}

/* UDP header. Returns 0, or -1 if cut short. */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					struct udphdr **udphdr)
{
	struct udphdr *h = nh->pos;

	if ((void *)(h + 1) > data_end)
		return -1;

	nh->pos = h + 1;
	*udphdr = h;
	return 0;
}

/* TCP header with its options. Returns 0, or -1 if cut short or its data
 * offset is below 5 words.
 */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *h = nh->pos;
	int hdrsize;

	if ((void *)(h + 1) > data_end)
		return -1;
	hdrsize = h->doff * 4;
	if (hdrsize < (int)sizeof(*h))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;

	nh->pos += hdrsize;
	*tcphdr = h;
	return 0;
}

#endif /* XDPCTL_PARSING_HELPERS_H */
