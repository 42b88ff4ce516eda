// SPDX-License-Identifier: GPL-2.0
/* The C peer of the stats_read benchmark: read the pinned xdp_stats_map N
 * times, each a single BPF_MAP_LOOKUP_BATCH summed over CPUs, as `xdpctl
 * stats` does per sample. Prints the mean ns per read.
 * Usage: stats_ref PIN N
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common_kern_user.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct datarec sum[XDP_ACTION_MAX];
	__u32 keys[XDP_ACTION_MAX], next;
	struct datarec *values;
	int fd, cpus;
	double start;
	long n, i;
	__u64 sink = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s PIN N\n", argv[0]);
		return 2;
	}
	n = atol(argv[2]);
	fd = bpf_obj_get(argv[1]);
	cpus = libbpf_num_possible_cpus();
	if (fd < 0 || cpus < 1) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	values = calloc((size_t)XDP_ACTION_MAX * cpus, sizeof(*values));
	if (!values)
		return 1;

	start = now_ns();
	for (i = 0; i < n; i++) {
		__u32 count = XDP_ACTION_MAX;
		int err = bpf_map_lookup_batch(fd, NULL, &next, keys, values, &count, NULL);

		if (err && errno != ENOENT) {
			fprintf(stderr, "lookup_batch: %s\n", strerror(errno));
			return 1;
		}
		memset(sum, 0, sizeof(sum));
		for (__u32 k = 0; k < count; k++) {
			for (int c = 0; c < cpus; c++) {
				sum[keys[k]].rx_packets += values[k * cpus + c].rx_packets;
				sum[keys[k]].rx_bytes += values[k * cpus + c].rx_bytes;
			}
		}
		sink += sum[XDP_PASS].rx_packets;
	}
	printf("%.1f\n", (now_ns() - start) / n);
	/* Keep the sums observable so the loop is not optimised away. */
	fprintf(stderr, "%llu\n", (unsigned long long)sink);
	free(values);
	return 0;
}
