// Which address inbound delivery connects to a pod from (issue 10: applications see their
// real client): the client's own when the proxy can vouch for it, else none (the node's).
import test from 'ava';
import type { Workload } from '../../control/api/snapshot.js';
import { clientAddress, type InboundConnection } from '../../agent/proxy/inbound-delivery.js';
import { provenSourceWorkload } from '../../agent/hbone/server.js';

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const workload = (name: string, ip: string, spiffeId: string): Workload =>
  ({ uid: `shop/${name}`, name, namespace: 'shop', node: 'node-a', ip, serviceAccount: name, labels: {}, meshed: true, spiffeId }) as unknown as Workload;
const server = workload('server', '10.244.0.5', 'spiffe://cluster.local/ns/shop/sa/server');
const client = workload('client', '10.244.1.7', CLIENT);
const byIp = (ip: string) => [server, client].find((w) => w.ip === ip);
const state = { workloadByIp: byIp };

const conn = (c: Partial<InboundConnection>): InboundConnection => ({
  destination: server,
  port: 8080,
  sourceIp: client.ip,
  sourcePort: 40000,
  sourcePrincipal: undefined,
  security: 'none',
  ...c,
});

test('plaintext the kernel captured: the peer it came from, pod or not', (t) => {
  t.is(clientAddress(conn({}), undefined), client.ip);
  t.is(clientAddress(conn({ sourceIp: '10.244.9.9' }), undefined), '10.244.9.9');
});

test('a tunnel: the address it claims, only when the workload there runs as the principal the peer proved', (t) => {
  const proven = conn({ security: 'mutual_tls', sourcePrincipal: CLIENT });
  t.is(clientAddress(proven, provenSourceWorkload(proven, state)), client.ip);
  // another identity claiming the client's address, or an address no workload has: the node's address
  const liar = conn({ security: 'mutual_tls', sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/other' });
  t.is(clientAddress(liar, provenSourceWorkload(liar, state)), undefined);
  const nobody = conn({ security: 'mutual_tls', sourcePrincipal: CLIENT, sourceIp: '10.244.9.9' });
  t.is(clientAddress(nobody, provenSourceWorkload(nobody, state)), undefined);
});

test("a pod calling itself, and IPv6: the node's address", (t) => {
  t.is(clientAddress(conn({ sourceIp: server.ip }), undefined), undefined);
  const self = conn({ security: 'mutual_tls', sourcePrincipal: server.spiffeId, sourceIp: server.ip });
  t.is(clientAddress(self, provenSourceWorkload(self, state)), undefined);
  t.is(clientAddress(conn({ sourceIp: 'fd00::7' }), undefined), undefined);
});
