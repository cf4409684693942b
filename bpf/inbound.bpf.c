// SPDX-License-Identifier: GPL-2.0-only
/*
 * Inbound capture: plaintext TCP to a meshed pod of this node that did not come from this
 * node's own stack (the node proxy delivering, kubelet probes) goes to the node proxy's
 * transparent listener (15006) instead of the pod. The proxy reads the destination the
 * client dialled from its accepted socket's local address.
 *
 *   nm_inbound       tc ingress on the uplinks and the pod bridge: routed packets. A SYN
 *                    is assigned to the listener, a later packet to the socket the
 *                    listener accepted; both are marked, and the policy route
 *                    (fwmark -> table with "local 0.0.0.0/0 dev lo") delivers them here.
 *   nm_inbound_port  tc egress on every bridge port (a pod's node-side veth): frames the
 *                    bridge switched from a neighbour pod never reach the IP stack, so the
 *                    port hands them to its bridge's ingress, where nm_inbound captures
 *                    them. On the destination's port, so a new client pod is covered from
 *                    its first frame.
 *
 * Both also take a meshed pod's answers to the proxy's transparent delivering sockets (the
 * proxy connects to the pod from its client's address, so the answer is addressed to the
 * client): a packet from a meshed pod that an established socket of this node owns goes
 * to that socket, marked for the same policy route; anything else from the pod is left to
 * routing as before. Kubelet probes and every other packet this node's own stack builds
 * are never captured (ingress_ifindex 0 at a port's egress; never seen at tc ingress):
 * ARCHITECTURE.md, issue 10, says why that is the line.
 *
 * A connection that was not captured from its SYN (it predates the pod being meshed, or
 * the agent) is left alone. With no listener (no agent) a new connection is dropped, unless
 * the pod fails open (NM_INBOUND_F_FAIL_OPEN, never a STRICT pod) and the proxy is not
 * alive (liveness.h): then it reaches the pod directly. Map layouts: nodemesh.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodemesh.h"
#include "liveness.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_inbound_config);
} nm_inbound_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_INBOUND_PODS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} nm_inbound_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nm_inbound_listener SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_INBOUND_PORTS_MAX);
	__type(key, __u32);
	__type(value, struct nm_inbound_port);
} nm_inbound_ports SEC(".maps");

enum verdict { PASS, CAPTURE, REFUSE };

struct flow {
	struct bpf_sock_tuple tuple; /* ipv4 part: addresses and ports, network order */
	int syn;                     /* a connection's first packet: SYN without ACK */
	int fail_open;               /* the pod's new connections bypass a dead proxy */
	int reply;                   /* from a meshed pod: only an existing socket of ours takes it */
};

static __always_inline struct nm_inbound_config *config(void)
{
	__u32 zero = 0;
	struct nm_inbound_config *cfg = bpf_map_lookup_elem(&nm_inbound_config, &zero);

	if (!cfg || !cfg->mark)
		return 0; /* not configured yet: pass everything */
	return cfg;
}

/*
 * An Ethernet/IPv4/TCP packet to a meshed pod, port not excluded; or one FROM a meshed pod
 * (f->reply), which may answer the proxy's transparent delivering socket: the proxy
 * connects to the pod from its client's address (IP_TRANSPARENT), so the pod's answer is
 * addressed to the client and, unless taken here, would be routed (or bridged) to it.
 * Fragments are not looked at (a TCP segment is sent with DF; only the first fragment
 * has the ports).
 */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *tcp;
	__u32 *flags;

	if ((void *)(ip + 1) > end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_TCP)
		return 0;
	if (ip->ihl < 5 || (ip->frag_off & bpf_htons(0x3fff))) /* MF or an offset */
		return 0;
	/* variable header length: the verifier needs the bound checked on this pointer */
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return 0;
	flags = bpf_map_lookup_elem(&nm_inbound_pods, &ip->daddr);
	if (!flags || !(*flags & NM_INBOUND_F_CAPTURE) || tcp->dest == bpf_htons(NM_HBONE_PORT)) {
		flags = bpf_map_lookup_elem(&nm_inbound_pods, &ip->saddr);
		if (!flags || !(*flags & NM_INBOUND_F_CAPTURE) || tcp->source == bpf_htons(NM_HBONE_PORT))
			return 0;
		f->reply = 1;
	}
	f->tuple.ipv4.saddr = ip->saddr;
	f->tuple.ipv4.daddr = ip->daddr;
	f->tuple.ipv4.sport = tcp->source;
	f->tuple.ipv4.dport = tcp->dest;
	f->syn = tcp->syn && !tcp->ack;
	f->fail_open = (*flags & NM_INBOUND_F_FAIL_OPEN) != 0;
	return 1;
}

/*
 * The socket of this node that owns the flow: the proxy's accepted (or half-open)
 * socket for a captured connection, or its transparent delivering socket for a pod's
 * answer (found by the same 4-tuple lookup: the socket's local address is the client's),
 * else the listener for a new one. *sk holds a
 * reference the caller releases. A socket for the pod's address exists in this netns only
 * because the proxy accepted it transparently; a listener found by this lookup is some
 * 0.0.0.0:port service of the node, not ours.
 */
static __always_inline enum verdict lookup(struct __sk_buff *skb, struct flow *f, struct bpf_sock **sk)
{
	__u32 zero = 0;
	struct bpf_sock *s;

	s = bpf_skc_lookup_tcp(skb, &f->tuple, sizeof(f->tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (s) {
		if (s->state != BPF_TCP_LISTEN) {
			*sk = s;
			return CAPTURE;
		}
		bpf_sk_release(s);
	}
	/* from a meshed pod and no socket of ours holds it: its own traffic, routed as ever */
	if (f->reply || !f->syn)
		return PASS; /* not captured from its start: leave it as it was */
	if (f->fail_open && !nm_proxy_alive())
		return PASS; /* its namespace chose reachability over policy while the proxy is down */
	s = bpf_map_lookup_elem(&nm_inbound_listener, &zero);
	if (!s)
		return REFUSE; /* proxy not listening (restarting): never around it */
	*sk = s;
	return CAPTURE;
}

SEC("tc")
int nm_inbound(struct __sk_buff *skb)
{
	struct nm_inbound_config *cfg = config();
	struct bpf_sock *sk = 0;
	struct flow f = {};
	enum verdict v;
	long err;

	if (!cfg || !parse(skb, &f))
		return TC_ACT_UNSPEC; /* not ours: the next filter, if any, decides */
	v = lookup(skb, &f, &sk);
	if (v == PASS)
		return TC_ACT_UNSPEC;
	if (v == REFUSE)
		return TC_ACT_SHOT;
	skb->mark = (skb->mark & ~cfg->mask) | cfg->mark;
	/* a frame nm_inbound_port handed over is still addressed to the pod's MAC: without
	 * this, ip_rcv would drop it as another host's */
	bpf_skb_change_type(skb, PACKET_HOST);
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	/* unassigned, a SYN would reach no listener: drop it, the client retries */
	if (err && f.syn)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int nm_inbound_port(struct __sk_buff *skb)
{
	struct nm_inbound_config *cfg = config();
	struct nm_inbound_port *port;
	struct bpf_sock *sk = 0;
	struct flow f = {};
	__u32 ifindex = skb->ifindex;
	enum verdict v;

	/* ingress_ifindex 0: built by this node's own stack (the proxy, kubelet): deliver */
	if (!cfg || skb->ingress_ifindex == 0)
		return TC_ACT_UNSPEC;
	/* marked: it already went through here and came back, do not loop */
	if ((skb->mark & cfg->mask) == cfg->mark)
		return TC_ACT_UNSPEC;
	port = bpf_map_lookup_elem(&nm_inbound_ports, &ifindex);
	if (!port || !parse(skb, &f))
		return TC_ACT_UNSPEC;
	v = lookup(skb, &f, &sk);
	if (sk)
		bpf_sk_release(sk); /* only the verdict matters here; nm_inbound assigns */
	if (v == PASS)
		return TC_ACT_UNSPEC;
	if (v == REFUSE)
		return TC_ACT_SHOT;
	/* marked, it is never forwarded back here, even if nm_inbound is not on the bridge */
	skb->mark = (skb->mark & ~cfg->mask) | cfg->mark;
	return bpf_redirect(port->bridge_ifindex, BPF_F_INGRESS);
}
