/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the tracepoint programs and xdpctl (tracing01-02). */
#ifndef XDPCTL_TRACE_COMMON_H
#define XDPCTL_TRACE_COMMON_H

#include <linux/types.h>

/* Key of the exceptions map: which interface, which XDP action. */
struct exception_key {
	__s32 ifindex;
	__u32 action;
};

#endif /* XDPCTL_TRACE_COMMON_H */
