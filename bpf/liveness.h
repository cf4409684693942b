/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The node proxy's liveness as the eBPF programs see it (nm_liveness in nodemesh.h), for
 * the pods whose namespace fails open. Included by each .bpf.c that needs it: both objects
 * declare the same map, and libbpf makes them one through the shared pin.
 */
#ifndef NODEMESH_LIVENESS_H
#define NODEMESH_LIVENESS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodemesh.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_liveness);
} nm_liveness SEC(".maps");

/* 0: no heartbeat within its timeout (stopped, crashed, hung, or never served) */
static __always_inline int nm_proxy_alive(void)
{
	__u32 zero = 0;
	struct nm_liveness *l = bpf_map_lookup_elem(&nm_liveness, &zero);
	__u64 hb;

	if (!l)
		return 0;
	hb = l->heartbeat_ns;
	if (!hb)
		return 0;
	/* signed: a heartbeat a hair ahead of this CPU's clock still counts as now */
	return (__s64)(bpf_ktime_get_ns() - hb) <= (__s64)l->timeout_ns;
}

#endif /* NODEMESH_LIVENESS_H */
