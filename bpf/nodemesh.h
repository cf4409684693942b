/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The one definition of every nodemesh map's key and value, shared by the eBPF
 * programs (bpf/NAME.bpf.c) and the addon (native/). The addon exports sizeof/offsetof of
 * each struct so agent/datapath/codecs.ts checks its codecs against this file at load.
 *
 * Byte order, once for all maps:
 *   - IPv4 addresses and ports are NETWORK order (big-endian), exactly as they sit in a
 *     struct sockaddr_in, so the programs copy them without swapping.
 *   - cookies, marks and flags are HOST order (they are numbers, not wire data).
 *
 * Byte order of the kernel context fields the programs read them from (prototyped on
 * 6.18, see REFERENCE.md "eBPF datapath notes"):
 *   bpf_sock_addr.user_ip4        network order
 *   bpf_sock_addr.user_port       network order, in the low 16 bits of the u32
 *   bpf_sock_ops.local_ip4/remote_ip4  network order
 *   bpf_sock_ops.local_port       HOST order
 *   bpf_sock_ops.remote_port      network order, in the UPPER 16 bits of the u32
 *                                 (the kernel shifts it left by 16 on little-endian)
 *   bpf_sock.src_ip4/dst_ip4      network order
 *   bpf_sock.src_port             HOST order
 *   bpf_sock.dst_port             network order (__be16 followed by 16 bits of padding)
 *
 * Changing any struct or map definition here, or what a flag means, means a new pin
 * directory version (DATAPATH_PIN_VERSION in agent/datapath/redirect.ts): libbpf refuses a
 * pinned map whose definition changed, and an older agent's programs would misread the
 * maps. v2: nm_liveness and the FAIL_OPEN flags.
 */
#ifndef NODEMESH_H
#define NODEMESH_H

#include <linux/types.h>

#define NM_DEFAULT_PROXY_PORT 15001
#define NM_SOL_IP 0
#define NM_SO_ORIGINAL_DST 80

/* map names, as pinned under <pin dir>/maps/ */
#define NM_MAP_CONFIG "nm_config"
#define NM_MAP_MESH_NETNS "nm_mesh_netns"
#define NM_MAP_ORIG_BY_COOKIE "nm_orig_by_cookie"
#define NM_MAP_ORIG_BY_TUPLE "nm_orig_by_tuple"
#define NM_MAP_LIVENESS "nm_liveness"

#define NM_MESH_NETNS_MAX 4096
#define NM_ORIG_MAX 65536

/*
 * nm_config: ARRAY, 1 entry, key __u32 0. Written by the agent before the links are
 * attached; proxy_ip4 == 0 means "not configured" and every program passes through.
 */
struct nm_config {
	__u32 proxy_ip4;  /* proxy outbound address, network order */
	__u16 proxy_port; /* proxy outbound port (15001), network order */
	__u16 _pad;       /* zero */
	__u32 mark;       /* SO_MARK of the proxy's own sockets, host order; 0 = no mark check */
	__u32 flags;      /* reserved, zero */
};

/*
 * nm_mesh_netns: HASH, key __u64 netns cookie (host order, the value of
 * getsockopt(SO_NETNS_COOKIE) and bpf_get_netns_cookie()), value __u32 flags below.
 * FAIL_OPEN: the pod's namespace asked for nodemesh.io/fail-mode: open and the pod is not
 * STRICT; while the proxy is not alive (nm_liveness) its connects go where they were
 * dialled instead of to a proxy that cannot take them.
 */
#define NM_NETNS_F_ENROLLED 1u
#define NM_NETNS_F_FAIL_OPEN 2u

/*
 * nm_liveness: ARRAY, 1 entry, key __u32 0, one map shared by both objects (pinned once
 * under <pin dir>/maps/). The agent writes heartbeat_ns (its CLOCK_MONOTONIC now, the
 * clock bpf_ktime_get_ns() reads) every few hundred milliseconds while its listeners
 * serve, and 0 when it stops gracefully or hands over; never written = 0. The proxy is
 * alive while bpf_ktime_get_ns() - heartbeat_ns <= timeout_ns. Only FAIL_OPEN pods look
 * at it: everyone else fails closed, whatever it says.
 */
struct nm_liveness {
	__u64 heartbeat_ns; /* host order, CLOCK_MONOTONIC ns; 0: down */
	__u64 timeout_ns;   /* host order */
};

/*
 * The original destination of a redirected connection.
 * nm_orig_by_cookie: LRU_HASH, key __u64 socket cookie of the app's socket (host order,
 *   bpf_get_socket_cookie()), written by cgroup/connect4|6.
 * nm_orig_by_tuple: LRU_HASH, key struct nm_tuple4, written by sockops once the local
 *   port is bound; read by cgroup/getsockopt(SO_ORIGINAL_DST) on the proxy's side.
 * Lifetime: the cookie entry goes when the app's socket reaches TCP_CLOSE. The tuple
 * entry goes then too if the proxy has already read it (or the connect never got
 * through); otherwise the app wrote and closed before the proxy got to accept, the entry
 * is flagged APP_CLOSED and the proxy's one SO_ORIGINAL_DST read deletes it. LRU
 * eviction covers connects that fail before any TCP state change, and proxies that
 * never read.
 */
#define NM_ORIG_F_V4MAPPED 1u   /* dialled as ::ffff:a.b.c.d through connect6 */
#define NM_ORIG_F_READ 2u       /* tuple map: the proxy read it with SO_ORIGINAL_DST */
#define NM_ORIG_F_APP_CLOSED 4u /* tuple map: the app's socket closed before that read */

struct nm_orig_dst {
	__u32 ip4;   /* original destination address, network order */
	__u16 port;  /* original destination port, network order */
	__u16 flags; /* NM_ORIG_F_*, host order */
};

/* A redirected connection's 4-tuple as the PROXY sees it on its accepted socket. */
struct nm_tuple4 {
	__u32 client_ip4;  /* the app's source address, network order */
	__u32 proxy_ip4;   /* the proxy address the app was redirected to, network order */
	__u16 client_port; /* the app's source port, network order */
	__u16 proxy_port;  /* the proxy port, network order */
};

/*
 * Inbound capture (bpf/inbound.bpf.c): plaintext TCP to a meshed pod of this node that
 * did not come from this node's own stack is handed to the node proxy's transparent
 * listener (15006) with bpf_sk_assign, and marked for the policy route that delivers it
 * locally. Maps, pinned under <pin dir>/maps/ like the others:
 *
 * nm_inbound_config: ARRAY, 1 entry, key __u32 0. mark == 0: not configured, pass all.
 * nm_inbound_pods: HASH, key __u32 pod IPv4 (network order), value __u32 NM_INBOUND_F_*.
 * nm_inbound_listener: SOCKMAP, 1 entry, key __u32 0, value __u64 (the listener's fd on
 *   update, its socket cookie on lookup). Empty: captured SYNs are dropped (the client
 *   retries) rather than delivered around the proxy.
 * nm_inbound_ports: HASH, key __u32 ifindex of a bridge port (a pod's node-side veth),
 *   value struct nm_inbound_port: where its egress program hands bridged frames over.
 */
#define NM_MAP_INBOUND_CONFIG "nm_inbound_config"
#define NM_MAP_INBOUND_PODS "nm_inbound_pods"
#define NM_MAP_INBOUND_LISTENER "nm_inbound_listener"
#define NM_MAP_INBOUND_PORTS "nm_inbound_ports"

#define NM_INBOUND_PODS_MAX 4096
#define NM_INBOUND_PORTS_MAX 4096
#define NM_DEFAULT_INBOUND_PORT 15006
#define NM_HBONE_PORT 15008 /* never captured, even on a pod IP */

#define NM_INBOUND_F_CAPTURE 1u
#define NM_INBOUND_F_FAIL_OPEN 2u /* as NM_NETNS_F_FAIL_OPEN: new connections bypass a dead proxy */

struct nm_inbound_config {
	__u32 mark;  /* host order: skb->mark = (skb->mark & ~mask) | mark when captured */
	__u32 mask;  /* host order: the bits of the mark the policy rule matches */
	__u32 flags; /* reserved, zero */
	__u32 _pad;  /* zero */
};

struct nm_inbound_port {
	__u32 bridge_ifindex; /* host order: the bridge this port belongs to */
	__u32 flags;          /* reserved, zero */
};

#endif /* NODEMESH_H */
