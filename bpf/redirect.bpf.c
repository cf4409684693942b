// SPDX-License-Identifier: GPL-2.0-only
/*
 * Outbound capture for meshed pods: connect() of a TCP socket in an enrolled network
 * namespace is rewritten to the node proxy, and the original destination is kept so
 * the proxy can ask for it with getsockopt(SO_ORIGINAL_DST) and the app still sees what
 * it dialled in getpeername(). Map layouts and byte order: nodemesh.h.
 *
 * A pod whose namespace fails open (NM_NETNS_F_FAIL_OPEN) is left alone while the proxy is
 * not alive (liveness.h): its connects reach what it dialled instead of a proxy that is
 * not there. Every other enrolled pod is redirected whatever the proxy's state, so with
 * no proxy listening its connects are refused: fail closed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodemesh.h"
#include "liveness.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_config);
} nm_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_MESH_NETNS_MAX);
	__type(key, __u64);
	__type(value, __u32);
} nm_mesh_netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_ORIG_MAX);
	__type(key, __u64);
	__type(value, struct nm_orig_dst);
} nm_orig_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_ORIG_MAX);
	__type(key, struct nm_tuple4);
	__type(value, struct nm_orig_dst);
} nm_orig_by_tuple SEC(".maps");

static __always_inline struct nm_config *config(void)
{
	__u32 zero = 0;
	struct nm_config *cfg = bpf_map_lookup_elem(&nm_config, &zero);

	if (!cfg || !cfg->proxy_ip4)
		return 0; /* not configured yet: pass everything through */
	return cfg;
}

/*
 * The checks shared by connect4 and connect6; dst_ip4 is network order. Returns the
 * config when this connect must go to the proxy.
 */
static __always_inline struct nm_config *should_redirect(struct bpf_sock_addr *ctx, __u32 dst_ip4)
{
	struct nm_config *cfg;
	struct bpf_sock *sk;
	__u32 *flags;
	__u64 netns;

	if (ctx->type != SOCK_STREAM)
		return 0;
	if ((bpf_ntohl(dst_ip4) >> 24) == 127)
		return 0;
	cfg = config();
	if (!cfg || dst_ip4 == cfg->proxy_ip4)
		return 0;
	netns = bpf_get_netns_cookie(ctx);
	flags = bpf_map_lookup_elem(&nm_mesh_netns, &netns);
	if (!flags)
		return 0;
	/* ctx->sk is a full socket here (PTR_TO_SOCKET, never null), mark is a u32 read */
	sk = ctx->sk;
	if (cfg->mark && sk->mark == cfg->mark)
		return 0;
	if ((*flags & NM_NETNS_F_FAIL_OPEN) && !nm_proxy_alive())
		return 0;
	return cfg;
}

static __always_inline void remember(struct bpf_sock_addr *ctx, __u32 ip4, __u16 port, __u16 flags)
{
	struct nm_orig_dst orig = { .ip4 = ip4, .port = port, .flags = flags };
	__u64 cookie = bpf_get_socket_cookie(ctx);

	bpf_map_update_elem(&nm_orig_by_cookie, &cookie, &orig, BPF_ANY);
}

static __always_inline int is_v4mapped(const __u32 *ip6)
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff);
}

SEC("cgroup/connect4")
int nm_connect4(struct bpf_sock_addr *ctx)
{
	__u32 dst = ctx->user_ip4;
	struct nm_config *cfg = should_redirect(ctx, dst);

	if (!cfg)
		return 1;
	remember(ctx, dst, (__u16)ctx->user_port, 0);
	ctx->user_ip4 = cfg->proxy_ip4;
	ctx->user_port = cfg->proxy_port;
	return 1;
}

/* Only v4-mapped destinations (::ffff:a.b.c.d on a dual-stack socket); real IPv6 passes. */
SEC("cgroup/connect6")
int nm_connect6(struct bpf_sock_addr *ctx)
{
	/* the verifier wants each user_ip6 word read as its own u32 load */
	__u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	struct nm_config *cfg;

	if (!is_v4mapped(ip6))
		return 1;
	cfg = should_redirect(ctx, ip6[3]);
	if (!cfg)
		return 1;
	remember(ctx, ip6[3], (__u16)ctx->user_port, NM_ORIG_F_V4MAPPED);
	ctx->user_ip6[3] = cfg->proxy_ip4; /* words 0-2 already are ::ffff */
	ctx->user_port = cfg->proxy_port;
	return 1;
}

SEC("sockops")
int nm_sockops(struct bpf_sock_ops *skops)
{
	/*
	 * local_ip4/remote_ip4 are valid for v4-mapped IPv6 sockets too (they read the
	 * socket's inet addresses), so one path serves connect4 and connect6.
	 */
	struct nm_tuple4 tuple = {
		.client_ip4 = skops->local_ip4,
		.proxy_ip4 = skops->remote_ip4,
		.client_port = bpf_htons((__u16)skops->local_port), /* host -> network */
		.proxy_port = (__u16)(skops->remote_port >> 16),     /* already network */
	};
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct nm_orig_dst *orig;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		orig = bpf_map_lookup_elem(&nm_orig_by_cookie, &cookie);
		if (!orig)
			return 1;
		/* at connect a stale record of an earlier connection on this tuple is replaced;
		 * established only fills in a record that is missing */
		bpf_map_update_elem(&nm_orig_by_tuple, &tuple, orig,
				    skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB ? BPF_ANY : BPF_NOEXIST);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0] old state, args[1] new state */
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		bpf_map_delete_elem(&nm_orig_by_cookie, &cookie);
		orig = bpf_map_lookup_elem(&nm_orig_by_tuple, &tuple);
		if (!orig)
			return 1;
		/*
		 * An app that writes and closes can reach TCP_CLOSE (via FIN_WAIT2 -> time-wait)
		 * before a busy proxy has accepted: keep the entry for that one read.
		 */
		if ((orig->flags & NM_ORIG_F_READ) || skops->args[0] == BPF_TCP_SYN_SENT)
			bpf_map_delete_elem(&nm_orig_by_tuple, &tuple);
		else
			orig->flags |= NM_ORIG_F_APP_CLOSED;
		return 1;
	}
	return 1;
}

/*
 * SO_ORIGINAL_DST on the proxy's accepted socket. Runs after the kernel's own
 * getsockopt (ENOPROTOOPT/ENOENT without a conntrack entry); answers from
 * nm_orig_by_tuple and passes every other call through untouched.
 */
SEC("cgroup/getsockopt")
int nm_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct nm_tuple4 tuple = {};
	struct nm_orig_dst *orig;
	struct {
		__u16 family;
		__u16 port;
		__u32 addr;
		__u8 zero[8];
	} *sin = ctx->optval;

	if (ctx->level != NM_SOL_IP || ctx->optname != NM_SO_ORIGINAL_DST)
		return 1;
	if (!sk)
		return 1;
	/* the accepted socket's source is the proxy, its destination the client */
	tuple.client_ip4 = sk->dst_ip4;
	tuple.client_port = (__u16)sk->dst_port;          /* already network */
	tuple.proxy_ip4 = sk->src_ip4;
	tuple.proxy_port = bpf_htons((__u16)sk->src_port); /* host -> network */
	orig = bpf_map_lookup_elem(&nm_orig_by_tuple, &tuple);
	if (!orig)
		return 1;
	if ((void *)(sin + 1) > ctx->optval_end)
		return 1; /* caller's buffer is shorter than a sockaddr_in: leave the kernel's answer */
	sin->family = AF_INET;
	sin->port = orig->port;
	sin->addr = orig->ip4;
	__builtin_memset(sin->zero, 0, sizeof(sin->zero));
	/* two u32 stores: clang would merge adjacent optlen+retval into one u64 store,
	 * which the verifier rejects as an invalid context access */
	ctx->optlen = sizeof(*sin);
	asm volatile("" ::: "memory");
	ctx->retval = 0;
	if (orig->flags & NM_ORIG_F_APP_CLOSED)
		bpf_map_delete_elem(&nm_orig_by_tuple, &tuple); /* sockops left it for this read */
	else
		orig->flags |= NM_ORIG_F_READ;
	return 1;
}

static __always_inline struct nm_orig_dst *orig_of(void *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&nm_orig_by_cookie, &cookie);
}

/* The app's getpeername() reports what it dialled, not the proxy. */
SEC("cgroup/getpeername4")
int nm_getpeername4(struct bpf_sock_addr *ctx)
{
	struct nm_orig_dst *orig = orig_of(ctx);

	if (!orig)
		return 1;
	ctx->user_ip4 = orig->ip4;
	ctx->user_port = orig->port;
	return 1;
}

SEC("cgroup/getpeername6")
int nm_getpeername6(struct bpf_sock_addr *ctx)
{
	struct nm_orig_dst *orig = orig_of(ctx);

	if (!orig)
		return 1;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = bpf_htonl(0xffff);
	ctx->user_ip6[3] = orig->ip4;
	ctx->user_port = orig->port;
	return 1;
}
