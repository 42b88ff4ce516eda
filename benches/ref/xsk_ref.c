// SPDX-License-Identifier: GPL-2.0
/* The C reference of the `xdpctl afxdp` benchmark: advanced03's user-space
 * side written against libxdp's xsk API as the tutorial does, with its echo
 * reply switched on. It loads the same xdp_sock object xdpctl ships, binds in
 * copy mode with need-wakeup, busy-polls, and takes 64 frames per pass.
 *
 *   xsk_ref IFNAME OBJECT native|skb drop|echo
 *
 * Prints "ready" on stderr once frames flow to it, and on SIGINT or SIGTERM
 * {"rx_packets":N,"tx_packets":M} on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define NUM_FRAMES 4096
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE
#define RING_SIZE  2048
#define BATCH	   64

#define ETH_HLEN  14
#define IPV6_HLEN 40
#define ICMP6_OFF (ETH_HLEN + IPV6_HLEN)

struct xsk {
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_socket *sock;
	unsigned char *area;
	__u64 free[NUM_FRAMES];
	__u32 nfree;
	__u32 in_flight;
	__u64 rx_packets, tx_packets;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void fail(const char *what, int err)
{
	fprintf(stderr, "xsk_ref: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* RFC 1624 eqn. 3, on host-order words of the big-endian data. */
static __u16 csum_replace(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u32)(__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* The tutorial's process_packet with its `if (false)` taken out. */
static bool echo_reply(unsigned char *f, __u32 len)
{
	unsigned char tmp[16];
	__u16 check;

	if (len < ICMP6_OFF + 8 || f[12] != 0x86 || f[13] != 0xdd || f[ETH_HLEN + 6] != 58 ||
	    f[ETH_HLEN + 24] == 0xff || f[ICMP6_OFF] != 128 || f[ICMP6_OFF + 1] != 0)
		return false;
	memcpy(tmp, f, 6);
	memcpy(f, f + 6, 6);
	memcpy(f + 6, tmp, 6);
	memcpy(tmp, f + ETH_HLEN + 8, 16);
	memcpy(f + ETH_HLEN + 8, f + ETH_HLEN + 24, 16);
	memcpy(f + ETH_HLEN + 24, tmp, 16);
	f[ICMP6_OFF] = 129;
	check = (__u16)(f[ICMP6_OFF + 2] << 8 | f[ICMP6_OFF + 3]);
	check = csum_replace(check, 128 << 8, 129 << 8);
	f[ICMP6_OFF + 2] = check >> 8;
	f[ICMP6_OFF + 3] = check & 0xff;
	return true;
}

static void refill(struct xsk *x)
{
	__u32 n = xsk_prod_nb_free(&x->fill, x->nfree);
	__u32 idx, i;

	if (n > x->nfree)
		n = x->nfree;
	if (!n || xsk_ring_prod__reserve(&x->fill, n, &idx) != n)
		return;
	for (i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&x->fill, idx++) = x->free[--x->nfree];
	xsk_ring_prod__submit(&x->fill, n);
}

static void complete_tx(struct xsk *x)
{
	__u32 idx, n, i;

	if (!x->in_flight)
		return;
	if (xsk_ring_prod__needs_wakeup(&x->tx))
		sendto(xsk_socket__fd(x->sock), NULL, 0, MSG_DONTWAIT, NULL, 0);
	n = xsk_ring_cons__peek(&x->comp, RING_SIZE, &idx);
	for (i = 0; i < n; i++)
		x->free[x->nfree++] =
		    *xsk_ring_cons__comp_addr(&x->comp, idx++) & ~(__u64)(FRAME_SIZE - 1);
	xsk_ring_cons__release(&x->comp, n);
	x->in_flight -= n;
}

static void pass(struct xsk *x, bool echo)
{
	__u32 idx_rx, idx_tx = 0, n, i, sent = 0;
	__u64 replies[BATCH];
	__u32 lens[BATCH];

	n = xsk_ring_cons__peek(&x->rx, BATCH, &idx_rx);
	for (i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx_rx++);
		unsigned char *f = xsk_umem__get_data(x->area, d->addr);

		x->rx_packets++;
		if (echo && echo_reply(f, d->len)) {
			replies[sent] = d->addr;
			lens[sent++] = d->len;
		} else {
			x->free[x->nfree++] = d->addr & ~(__u64)(FRAME_SIZE - 1);
		}
	}
	if (n)
		xsk_ring_cons__release(&x->rx, n);
	if (sent) {
		__u32 room = xsk_ring_prod__reserve(&x->tx, sent, &idx_tx);

		for (i = 0; i < sent; i++) {
			if (room == sent) {
				struct xdp_desc *t = xsk_ring_prod__tx_desc(&x->tx, idx_tx++);

				t->addr = replies[i];
				t->len = lens[i];
			} else {
				x->free[x->nfree++] = replies[i] & ~(__u64)(FRAME_SIZE - 1);
			}
		}
		if (room == sent) {
			xsk_ring_prod__submit(&x->tx, sent);
			x->in_flight += sent;
			x->tx_packets += sent;
		}
	}
	complete_tx(x);
	refill(x);
}

int main(int argc, char **argv)
{
	struct xsk_socket_config cfg = {
	    .rx_size = RING_SIZE,
	    .tx_size = RING_SIZE,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	struct xsk_umem_config ucfg = {
	    .fill_size = RING_SIZE,
	    .comp_size = RING_SIZE,
	    .frame_size = FRAME_SIZE,
	};
	static struct xsk x;
	struct bpf_program *prog;
	struct bpf_object *obj;
	__u32 flags, key = 0;
	int ifindex, err, fd;
	bool echo;
	__u32 i;

	if (argc != 5) {
		fprintf(stderr, "usage: xsk_ref IFNAME OBJECT native|skb drop|echo\n");
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex)
		fail(argv[1], errno);
	flags = strcmp(argv[3], "skb") ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	echo = !strcmp(argv[4], "echo");

	x.area = mmap(NULL, (size_t)NUM_FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (x.area == MAP_FAILED)
		fail("mmap", errno);
	err = xsk_umem__create(&x.umem, x.area, (__u64)NUM_FRAMES * FRAME_SIZE, &x.fill, &x.comp,
			       &ucfg);
	if (err)
		fail("xsk_umem__create", err);
	err = xsk_socket__create(&x.sock, argv[1], 0, x.umem, &x.rx, &x.tx, &cfg);
	if (err)
		fail("xsk_socket__create", err);
	for (i = 0; i < NUM_FRAMES; i++)
		x.free[x.nfree++] = (__u64)i * FRAME_SIZE;
	refill(&x);

	obj = bpf_object__open_file(argv[2], NULL);
	if (!obj)
		fail(argv[2], errno);
	err = bpf_object__load(obj);
	if (err)
		fail("loading the object", err);
	prog = bpf_object__find_program_by_name(obj, "xdp_sock");
	if (!prog)
		fail("xdp_sock", ENOENT);
	err = bpf_xdp_attach(ifindex, bpf_program__fd(prog), flags | XDP_FLAGS_UPDATE_IF_NOEXIST,
			     NULL);
	if (err)
		fail("attaching xdp_sock", err);
	fd = bpf_object__find_map_fd_by_name(obj, "xsks_map");
	err = fd < 0 ? fd : xsk_socket__update_xskmap(x.sock, fd);
	if (err) {
		bpf_xdp_detach(ifindex, flags, NULL);
		fail("xsks_map", err);
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "ready\n");
	while (!stopping)
		pass(&x, echo);

	bpf_map_delete_elem(fd, &key);
	bpf_xdp_detach(ifindex, flags, NULL);
	xsk_socket__delete(x.sock);
	xsk_umem__delete(x.umem);
	munmap(x.area, (size_t)NUM_FRAMES * FRAME_SIZE);
	bpf_object__close(obj);
	printf("{\"rx_packets\":%llu,\"tx_packets\":%llu}\n", (unsigned long long)x.rx_packets,
	       (unsigned long long)x.tx_packets);
	return 0;
}
