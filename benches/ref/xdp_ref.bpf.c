// SPDX-License-Identifier: GPL-2.0
/* Reference programs for `make bench`: the work of bpf/xdp_prog_kern.bpf.c
 * and of every other shipped XDP program written as plain, self-contained C (no
 * shared helpers, nothing from include/), plus a no-op program that only
 * returns a verdict. Each is frags-aware where its counterpart is, and counts
 * bytes as it does (the whole frame, bpf_xdp_get_buff_len).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

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
	SEC("xdp.frags")                                                                           \
	int name(struct xdp_md *ctx)                                                               \
	{                                                                                          \
		__u32 key = verdict;                                                               \
		struct ref_rec *rec = bpf_map_lookup_elem(&ref_stats, &key);                       \
		if (rec) {                                                                         \
			rec->packets++;                                                            \
			rec->bytes += bpf_xdp_get_buff_len(ctx);                                   \
		}                                                                                  \
		return verdict;                                                                    \
	}

REF_PROG(ref_pass, XDP_PASS)
REF_PROG(ref_drop, XDP_DROP)
REF_PROG(ref_abort, XDP_ABORTED)

/* Count the verdict in ref_stats and return it, as REF_PROG does. */
static __always_inline int count(struct xdp_md *ctx, __u32 verdict)
{
	__u32 key = verdict;
	struct ref_rec *rec = bpf_map_lookup_elem(&ref_stats, &key);

	if (rec) {
		rec->packets++;
		rec->bytes += bpf_xdp_get_buff_len(ctx);
	}
	return verdict;
}

struct vlan {
	__be16 tci;
	__be16 proto;
};

struct echo {
	__u8 type;
	__u8 code;
	__sum16 cksum;
	__be16 id;
	__be16 seq;
};

#define IS_VLAN(p) ((p) == bpf_htons(ETH_P_8021Q) || (p) == bpf_htons(ETH_P_8021AD))

/* Ethernet and up to two VLAN tags; -1 if the frame ends inside them. */
static __always_inline int skip_eth(void **pos, void *data_end)
{
	struct ethhdr *eth = *pos;
	struct vlan *v;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
	v = (void *)(eth + 1);
	for (i = 0; i < 2 && IS_VLAN(proto); i++, v++) {
		if ((void *)(v + 1) > data_end)
			return -1;
		proto = v->proto;
	}
	*pos = v;
	return proto;
}

/* Whether the IPv4 header at @iph, options included, lies within the frame. */
static __always_inline int ipv4_whole(struct iphdr *iph, void *data_end)
{
	return (void *)(iph + 1) <= data_end && iph->ihl >= 5 &&
	       (void *)iph + iph->ihl * 4 <= data_end;
}

/* One 16-bit word of the checksummed data went from @from to @to (RFC 1624). */
static __always_inline __sum16 csum_update(__sum16 check, __be16 from, __be16 to)
{
	__u32 s = (__u16)~check + (__u16)~from + to;

	s = (s & 0xffff) + (s >> 16);
	s += s >> 16;
	return ~s;
}

/* Drop ICMP and ICMPv6 echo requests with an even sequence number. */
SEC("xdp.frags")
int ref_parser(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct ipv6hdr *ip6h;
	struct iphdr *iph;
	struct echo *echo;
	int proto, request;

	proto = skip_eth(&pos, data_end);
	if (proto < 0)
		return count(ctx, XDP_ABORTED);

	if (proto == bpf_htons(ETH_P_IP)) {
		iph = pos;
		if (!ipv4_whole(iph, data_end))
			return count(ctx, XDP_PASS);
		if (iph->protocol != IPPROTO_ICMP || (bpf_ntohs(iph->frag_off) & 0x1fff))
			return count(ctx, XDP_PASS);
		pos += iph->ihl * 4;
		request = 8; /* ICMP_ECHO */
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6h = pos;
		if ((void *)(ip6h + 1) > data_end || ip6h->nexthdr != IPPROTO_ICMPV6)
			return count(ctx, XDP_PASS);
		pos = ip6h + 1;
		request = 128; /* ICMPV6_ECHO_REQUEST */
	} else {
		return count(ctx, XDP_PASS);
	}

	echo = pos;
	if ((void *)(echo + 1) > data_end || echo->type != request)
		return count(ctx, XDP_PASS);
	if (bpf_ntohs(echo->seq) % 2 == 0)
		return count(ctx, XDP_DROP);
	return count(ctx, XDP_PASS);
}

/* UDP and TCP destination port minus one, checksum fixed; a zero UDP
 * checksum over IPv4 stays zero, a computed zero UDP checksum is 0xffff.
 */
SEC("xdp.frags")
int ref_port_rewrite(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct ipv6hdr *ip6h;
	struct udphdr *udph;
	struct tcphdr *tcph;
	struct iphdr *iph;
	int proto, l4, v4;
	__be16 old;

	proto = skip_eth(&pos, data_end);
	if (proto < 0)
		return count(ctx, XDP_ABORTED);

	v4 = proto == bpf_htons(ETH_P_IP);
	if (v4) {
		iph = pos;
		if (!ipv4_whole(iph, data_end))
			return count(ctx, XDP_PASS);
		if (bpf_ntohs(iph->frag_off) & 0x1fff)
			return count(ctx, XDP_PASS);
		l4 = iph->protocol;
		pos += iph->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6h = pos;
		if ((void *)(ip6h + 1) > data_end)
			return count(ctx, XDP_PASS);
		l4 = ip6h->nexthdr;
		pos = ip6h + 1;
	} else {
		return count(ctx, XDP_PASS);
	}

	if (l4 == IPPROTO_UDP) {
		udph = pos;
		if ((void *)(udph + 1) > data_end)
			return count(ctx, XDP_PASS);
		old = udph->dest;
		udph->dest = bpf_htons(bpf_ntohs(old) - 1);
		if (v4 && !udph->check)
			return count(ctx, XDP_PASS);
		udph->check = csum_update(udph->check, old, udph->dest);
		if (!udph->check)
			udph->check = 0xffff;
	} else if (l4 == IPPROTO_TCP) {
		tcph = pos;
		if ((void *)(tcph + 1) > data_end || tcph->doff < 5 ||
		    pos + tcph->doff * 4 > data_end)
			return count(ctx, XDP_PASS);
		old = tcph->dest;
		tcph->dest = bpf_htons(bpf_ntohs(old) - 1);
		tcph->check = csum_update(tcph->check, old, tcph->dest);
	}
	return count(ctx, XDP_PASS);
}

/* Forward IPv4 and IPv6 by the kernel's FIB and neighbour table; pass what
 * the kernel must handle itself, drop what the FIB says to drop.
 */
SEC("xdp.frags")
int ref_router(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct bpf_fib_lookup fib = {};
	struct ipv6hdr *ip6h = NULL;
	struct iphdr *iph = NULL;
	struct ethhdr *eth = pos;
	int proto;
	long rc;
	__be16 old;

	proto = skip_eth(&pos, data_end);
	if (proto < 0)
		return count(ctx, XDP_ABORTED);

	if (proto == bpf_htons(ETH_P_IP)) {
		iph = pos;
		if (!ipv4_whole(iph, data_end) || iph->ttl <= 1)
			return count(ctx, XDP_PASS);
		fib.family = 2; /* AF_INET */
		fib.tos = iph->tos;
		fib.l4_protocol = iph->protocol;
		fib.tot_len = bpf_ntohs(iph->tot_len);
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6h = pos;
		if ((void *)(ip6h + 1) > data_end || ip6h->hop_limit <= 1)
			return count(ctx, XDP_PASS);
		fib.family = 10; /* AF_INET6 */
		fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0fffffff);
		fib.l4_protocol = ip6h->nexthdr;
		fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	} else {
		return count(ctx, XDP_PASS);
	}
	fib.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (iph) {
			/* TTL and protocol share the checksummed word. */
			old = *(__be16 *)&iph->ttl;
			iph->ttl--;
			iph->check = csum_update(iph->check, old, *(__be16 *)&iph->ttl);
		} else if (ip6h) {
			ip6h->hop_limit--;
		}
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return count(ctx, bpf_redirect(fib.ifindex, 0));
	}
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE ||
	    rc == BPF_FIB_LKUP_RET_PROHIBIT)
		return count(ctx, XDP_DROP);
	return count(ctx, XDP_PASS);
}

/* Pop the outer VLAN tag if there is one, else push VLAN id 1. */
SEC("xdp.frags")
int ref_vlan_swap(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct ethhdr *eth = pos, copy;
	struct vlan *v;
	__be16 inner;
	int ok;

	if (skip_eth(&pos, data_end) < 0)
		return count(ctx, XDP_ABORTED);
	__builtin_memcpy(&copy, eth, sizeof(copy));

	if (IS_VLAN(eth->h_proto)) {
		v = (void *)(eth + 1);
		if ((void *)(v + 1) > data_end)
			return count(ctx, XDP_ABORTED);
		inner = v->proto;
		if (bpf_xdp_adjust_head(ctx, (int)sizeof(*v)))
			return count(ctx, XDP_ABORTED);
		eth = (void *)(long)ctx->data;
		ok = (void *)(eth + 1) <= (void *)(long)ctx->data_end;
		if (ok) {
			__builtin_memcpy(eth, &copy, sizeof(*eth));
			eth->h_proto = inner;
		}
	} else {
		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*v)))
			return count(ctx, XDP_ABORTED);
		eth = (void *)(long)ctx->data;
		v = (void *)(eth + 1);
		ok = (void *)(v + 1) <= (void *)(long)ctx->data_end;
		if (ok) {
			__builtin_memcpy(eth, &copy, sizeof(*eth));
			v->tci = bpf_htons(1);
			v->proto = copy.h_proto;
			eth->h_proto = bpf_htons(ETH_P_8021Q);
		}
	}
	return count(ctx, ok ? XDP_PASS : XDP_ABORTED);
}

/* Answer ICMP and ICMPv6 echo requests to a unicast MAC and IP address that
 * are not fragments.
 */
SEC("xdp.frags")
int ref_icmp_echo(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct ethhdr *eth = pos;
	struct ipv6hdr *ip6h = NULL;
	struct iphdr *iph = NULL;
	struct in6_addr a6;
	__u8 mac[ETH_ALEN];
	struct echo *echo;
	int proto, request, reply;
	__be16 old;
	__be32 a4;

	proto = skip_eth(&pos, data_end);
	if (proto < 0)
		return count(ctx, XDP_ABORTED);
	if (eth->h_dest[0] & 0x01) /* a multicast or broadcast MAC */
		return count(ctx, XDP_PASS);

	if (proto == bpf_htons(ETH_P_IP)) {
		iph = pos;
		if (!ipv4_whole(iph, data_end))
			return count(ctx, XDP_PASS);
		if (iph->protocol != IPPROTO_ICMP || (bpf_ntohs(iph->frag_off) & 0x3fff) ||
		    (bpf_ntohl(iph->daddr) & 0xf0000000) == 0xe0000000 || iph->daddr == 0xffffffff)
			return count(ctx, XDP_PASS);
		pos += iph->ihl * 4;
		request = 8; /* ICMP_ECHO */
		reply = 0;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		ip6h = pos;
		if ((void *)(ip6h + 1) > data_end || ip6h->nexthdr != IPPROTO_ICMPV6 ||
		    ip6h->daddr.in6_u.u6_addr8[0] == 0xff)
			return count(ctx, XDP_PASS);
		pos = ip6h + 1;
		request = 128; /* ICMPV6_ECHO_REQUEST */
		reply = 129;
	} else {
		return count(ctx, XDP_PASS);
	}

	echo = pos;
	if ((void *)(echo + 1) > data_end || echo->type != request)
		return count(ctx, XDP_PASS);

	if (iph) {
		a4 = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a4;
	} else if (ip6h) {
		a6 = ip6h->saddr;
		ip6h->saddr = ip6h->daddr;
		ip6h->daddr = a6;
	}
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	old = *(__be16 *)echo;
	echo->type = reply;
	echo->cksum = csum_update(echo->cksum, old, *(__be16 *)echo);
	return count(ctx, XDP_TX);
}

struct ref_target {
	__u32 ifindex;
	__u8 mac[ETH_ALEN];
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ref_target);
	__uint(max_entries, 1);
} ref_target SEC(".maps");

/* Every frame to one device and one destination MAC. */
SEC("xdp.frags")
int ref_redirect(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct ref_target *t;
	__u32 key = 0;

	if ((void *)(eth + 1) > data_end)
		return count(ctx, XDP_ABORTED);
	t = bpf_map_lookup_elem(&ref_target, &key);
	if (!t || !t->ifindex)
		return count(ctx, XDP_PASS);
	__builtin_memcpy(eth->h_dest, t->mac, ETH_ALEN);
	return count(ctx, bpf_redirect(t->ifindex, 0));
}

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} ref_tx_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, ETH_ALEN);
	__uint(value_size, ETH_ALEN);
	__uint(max_entries, 256);
} ref_macs SEC(".maps");

/* Frames from a known source MAC get its destination MAC and leave through
 * ref_tx_port.
 */
SEC("xdp.frags")
int ref_redirect_map(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u8 *dest;
	long verdict;

	if ((void *)(eth + 1) > data_end)
		return count(ctx, XDP_ABORTED);
	dest = bpf_map_lookup_elem(&ref_macs, eth->h_source);
	if (!dest)
		return count(ctx, XDP_PASS);
	verdict = bpf_redirect_map(&ref_tx_port, 0, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		__builtin_memcpy(eth->h_dest, dest, ETH_ALEN);
	return count(ctx, verdict);
}

struct ref_queue {
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} ref_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ref_queue);
	__uint(max_entries, 64);
} ref_queues SEC(".maps");

/* Each frame to the AF_XDP socket of its queue, counted per queue. */
SEC("xdp")
int ref_sock(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	struct ref_queue *q = bpf_map_lookup_elem(&ref_queues, &queue);
	long verdict;

	if (!q)
		return XDP_PASS;
	verdict = bpf_redirect_map(&ref_xsks, queue, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		q->redirected++;
	else
		q->passed++;
	return verdict;
}

/* Set by the bench before loading, as xdpctl sets its programs' own. */
const volatile __u32 gen_udp_offset = 0;
const volatile __u16 gen_port_first = 0;
const volatile __u32 gen_port_count = 0;
const volatile __u32 sample_snaplen = 9216;
const volatile __u64 sample_wakeup = 1 << 20;

__u64 gen_sent = 0;
__u32 gen_next = 0;

/* Transmit the frame; with a port range, the next destination port. */
SEC("xdp")
int ref_trafficgen(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udph = (void *)(long)ctx->data + (gen_udp_offset & 0xff);
	__u32 next;
	__be16 port;

	gen_sent++;
	if (gen_port_count < 2)
		return XDP_TX;
	if ((void *)(udph + 1) > data_end)
		return XDP_ABORTED;
	next = gen_next;
	gen_next = next + 1 >= gen_port_count ? 0 : next + 1;
	port = bpf_htons((__u16)(gen_port_first + next));
	if (udph->check) {
		udph->check = csum_update(udph->check, udph->dest, port);
		if (!udph->check)
			udph->check = 0xffff;
	}
	udph->dest = port;
	return XDP_TX;
}

#define SAMPLE_MAX 9216

struct ref_sample {
	__u64 tstamp_ns;
	__u32 orig_len;
	__u32 cap_len;
	__u8 data[SAMPLE_MAX];
};

struct ref_sample_counts {
	__u64 seen;
	__u64 lost;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} ref_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ref_sample);
	__uint(max_entries, 1);
} ref_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ref_sample_counts);
	__uint(max_entries, 1);
} ref_sample_counts SEC(".maps");

/* Copy the head of every frame with its length and a timestamp to the ring. */
SEC("xdp.frags")
int ref_sample(struct xdp_md *ctx)
{
	struct ref_sample_counts *c;
	struct ref_sample *s;
	__u64 len, cap, flags;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&ref_sample_counts, &zero);
	s = bpf_map_lookup_elem(&ref_scratch, &zero);
	if (!c || !s)
		return XDP_PASS;
	c->seen++;
	len = bpf_xdp_get_buff_len(ctx);
	cap = len < sample_snaplen ? len : sample_snaplen;
	if (cap == 0 || cap > SAMPLE_MAX)
		return XDP_PASS;
	if (bpf_xdp_load_bytes(ctx, 0, s->data, cap))
		return XDP_PASS;
	s->tstamp_ns = bpf_ktime_get_ns();
	s->orig_len = len;
	s->cap_len = cap;
	flags = bpf_ringbuf_query(&ref_ring, BPF_RB_AVAIL_DATA) >= sample_wakeup
		    ? BPF_RB_FORCE_WAKEUP
		    : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&ref_ring, s, 16 + cap, flags))
		c->lost++;
	return XDP_PASS;
}

SEC("xdp")
int noop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
