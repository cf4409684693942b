// The east-west gateway (agent/hbone/gateway.ts) with the HBONE client going through it
// ("double HBONE", issue 13), all real TLS 1.3 and HTTP/2 on loopback: a source whose
// destination's node proxy is in another network reaches the pod through the gateway with
// TLS end to end — the destination proxy sees the source's own principal, not the
// gateway's — while the gateway itself refuses peers outside the trust bundle, tunnels to
// anything but a node proxy of its network, and a gateway with the wrong identity is
// refused by the source.
import test from 'ava';
import http2 from 'node:http2';
import { HboneConnector } from '../../agent/hbone/client.js';
import { HboneGateway } from '../../agent/hbone/gateway.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { FixedIdentityProvider } from '../helpers/test-ca.js';
import { createPki, exchange, flagOf, id, NODE_B_IP, req, status, world, type Pki, type World } from '../helpers/hbone-world.js';

const GATEWAY_IP = '127.0.0.20';
const GATEWAY_ID = id('nodemesh-system', 'nodemesh-gateway');
let pki: Pki;

test.before(async () => {
  pki = await createPki();
});

/** The world's node-b behind a gateway, and a connector of node-a that reaches node-b only through it. */
async function behindGateway(t: import('ava').ExecutionContext, w: World, opts: { gatewayId?: string; expectId?: string } = {}) {
  const gatewayCert = await pki.ca.issue(opts.gatewayId ?? GATEWAY_ID);
  const seen: string[] = [];
  const hbonePort = w.inbound.address.port;
  const gateway = new HboneGateway({
    host: GATEWAY_IP,
    port: 0,
    identity: new FixedIdentityProvider([pki.ca.certPem], [gatewayCert]),
    spiffeId: gatewayCert.spiffeId,
    // node-b's proxy is the one node of the gateway's network
    allowed: (ip, port) => {
      seen.push(`${ip}:${port}`);
      return ip === NODE_B_IP && port === hbonePort;
    },
    connectTimeoutMs: 15_000,
  });
  await gateway.listen();
  const state = new ProxyState(w.snapshot);
  const connector = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: (x) => state.nodeIp(x.node),
    port: hbonePort,
    connectTimeoutMs: 15_000,
    via: (x) => (x.node === 'node-b' ? { address: GATEWAY_IP, port: gateway.address.port, identity: opts.expectId ?? GATEWAY_ID } : undefined),
  });
  t.teardown(async () => {
    connector.close();
    await gateway.close();
  });
  return { gateway, connector, seen };
}

test('a connection to a pod in another network goes through the gateway with mTLS end to end: the destination proxy sees the source principal', async (t) => {
  const w = await world(t, pki);
  const { gateway, connector, seen } = await behindGateway(t, w);
  const s = await connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s, 'hello'), 'echo:hello');
  t.deepEqual(seen, [`${NODE_B_IP}:${w.inbound.address.port}`], 'the gateway was asked for node-b only');
  t.is(gateway.stats.tunnels, 1);
  const sessions = w.inbound.sessionsInfo();
  t.is(sessions.length, 1);
  t.is(sessions[0]!.principal, w.client.spiffeId, "node-b verified the client's own certificate through the tunnel");
  t.is(sessions[0]!.presented, w.web.spiffeId);
  // a second connection from the same source rides the same inner HBONE connection
  const s2 = await connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s2, 'again'), 'echo:again');
  t.is(gateway.stats.tunnels, 1, 'pooled: one tunnel through the gateway per (source, destination, node)');
});

test('the gateway is no open relay: a CONNECT to anything but a node proxy of its network is refused with 400', async (t) => {
  const w = await world(t, pki);
  const { gateway } = await behindGateway(t, w);
  const session = http2.connect(`https://${GATEWAY_IP}:${gateway.address.port}`, {
    servername: 'hbone-gateway.nodemesh',
    ca: [pki.ca.certPem],
    cert: pki.certs.client.certChainPem,
    key: pki.certs.client.keyPem,
    checkServerIdentity: () => undefined,
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `127.0.0.2:${w.webPort}` }), 400, 'a pod directly');
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `${NODE_B_IP}:22` }), 400, 'another port of the node');
  t.is(await status(session, { ':method': 'GET', ':path': '/' }), 400, 'not a CONNECT');
  t.is(await status(session, { ':method': 'CONNECT', ':authority': `${NODE_B_IP}:${w.inbound.address.port}` }), 200);
  t.is(gateway.stats.refused, 3);
});

test("a peer without the mesh's trust is refused at the gateway's handshake; a source refuses a gateway of the wrong identity", async (t) => {
  const w = await world(t, pki);
  const { gateway } = await behindGateway(t, w);
  // a client certificate from another CA
  const foreign = new HboneConnector({
    identity: new FixedIdentityProvider([pki.ca.certPem], [pki.certs.clientFromOtherCa]),
    nodeIp: () => NODE_B_IP,
    port: w.inbound.address.port,
    connectTimeoutMs: 15_000,
    via: () => ({ address: GATEWAY_IP, port: gateway.address.port, identity: GATEWAY_ID }),
  });
  t.teardown(() => foreign.close());
  t.is(await flagOf(foreign.connect(req(w.client, w.web, w.webPort))), 'TLS_FAILURE');
  t.is(gateway.stats.tunnels, 0);
  // the gateway presents an SVID the source did not expect (another workload's)
  const w2 = await world(t, pki);
  const { connector } = await behindGateway(t, w2, { expectId: id('nodemesh-system', 'somebody-else') });
  t.is(await flagOf(connector.connect(req(w2.client, w2.web, w2.webPort))), 'IDENTITY_ERROR');
});

test('closing the gateway resets its tunnels, and the source sees the connection end', async (t) => {
  const w = await world(t, pki);
  const { gateway, connector } = await behindGateway(t, w);
  const s = await connector.connect(req(w.client, w.web, w.webPort));
  s.write('x');
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  const ended = new Promise<void>((resolve) => {
    s.once('close', () => resolve());
    s.on('error', () => {});
  });
  await gateway.close();
  await ended;
  t.is(gateway.stats.open, 0);
});
