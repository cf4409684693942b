// The node proxy's gateway decision (agent/hbone/gateway-route.ts) wired into the HBONE
// client as serving.ts wires it, over real TLS 1.3 and HTTP/2 on loopback: with node-b in
// another network and the snapshot naming that network's east-west gateway, a connection to
// node-b's pod goes through the gateway (double HBONE) and the destination proxy sees the
// source's own principal; a destination in the source's network is dialled directly; and with
// no gateway known the connection fails UF before any socket is opened to the destination.
import test from 'ava';
import { HboneConnector } from '../../agent/hbone/client.js';
import { HboneGateway } from '../../agent/hbone/gateway.js';
import { gatewayRoute } from '../../agent/hbone/gateway-route.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { UpstreamError } from '../../agent/transport/connector.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { FixedIdentityProvider } from '../helpers/test-ca.js';
import { createPki, exchange, id, NODE_B_IP, req, world, type Pki, type World } from '../helpers/hbone-world.js';

const GATEWAY_IP = '127.0.0.21';
const GATEWAY_ID = id('nodemesh-system', 'eastwest');
let pki: Pki;

test.before(async () => {
  pki = await createPki();
});

/** The world's snapshot with node-b (and its pods) in network net-b, node-a in net-a, and the gateways given. */
function networked(w: World, gateways: Snapshot['gateways']): ProxyState {
  const s = structuredClone(w.snapshot);
  s.nodes = s.nodes.map((n) => ({ ...n, network: n.name === 'node-b' ? 'net-b' : 'net-a' }));
  s.workloads = s.workloads.map((x) => ({ ...x, network: x.node === 'node-b' ? 'net-b' : 'net-a' }));
  s.gateways = gateways;
  return new ProxyState(s);
}

async function connectorFor(t: import('ava').ExecutionContext, w: World, state: ProxyState) {
  const connector = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: (x) => state.nodeIp(x.node),
    port: w.inbound.address.port,
    connectTimeoutMs: 15_000,
    via: (x) => gatewayRoute(state, 'node-a', x),
  });
  t.teardown(() => connector.close());
  return connector;
}

test("a pod of another network is reached through the gateway the snapshot names, with the source's principal at the destination", async (t) => {
  const w = await world(t, pki);
  const gatewayCert = await pki.ca.issue(GATEWAY_ID);
  const gateway = new HboneGateway({
    host: GATEWAY_IP,
    port: 0,
    identity: new FixedIdentityProvider([pki.ca.certPem], [gatewayCert]),
    spiffeId: GATEWAY_ID,
    allowed: (ip, port) => ip === NODE_B_IP && port === w.inbound.address.port,
    connectTimeoutMs: 15_000,
  });
  await gateway.listen();
  t.teardown(() => gateway.close());
  const state = networked(w, [{ network: 'net-b', address: GATEWAY_IP, port: gateway.address.port, spiffeId: GATEWAY_ID, cluster: 'cluster-b' }]);
  const connector = await connectorFor(t, w, state);
  const s = await connector.connect(req(w.client, state.workloadByUid(w.web.uid)!, w.webPort));
  t.is(await exchange(s, 'hello'), 'echo:hello');
  t.is(gateway.stats.tunnels, 1, 'through the gateway');
  t.is(w.inbound.sessionsInfo()[0]!.principal, w.client.spiffeId);
});

test('a destination without a known gateway into its network fails UF, saying which network, and nothing is dialled', async (t) => {
  const w = await world(t, pki);
  const state = networked(w, []);
  const connector = await connectorFor(t, w, state);
  const err = await t.throwsAsync(connector.connect(req(w.client, state.workloadByUid(w.web.uid)!, w.webPort)), { instanceOf: UpstreamError });
  t.is((err as UpstreamError).flag, 'UF');
  t.regex(err!.message, /in network "net-b", not this node's \("net-a"\), and the snapshot knows no east-west gateway into it/);
  t.is(w.inbound.sessionsInfo().length, 0);
});
