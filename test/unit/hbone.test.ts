// HBONE, client side and the mesh connector, with real parts on loopback: real TLS 1.3 with
// real X.509-SVIDs (a test CA), real HTTP/2 (node:http2), node-b's real 15008 server, real
// TCP "pods" on 127.0.0.x (test/helpers/hbone-world.ts). No root needed.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { HboneConnector } from '../../agent/hbone/client.js';
import { HboneInbound } from '../../agent/hbone/server.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { sniForPodIp, podIpFromSni, parseForwardedFor, svidSpiffeId } from '../../agent/hbone/protocol.js';
import { MeshConnector } from '../../agent/proxy/mesh-connector.js';
import { compileSnapshot } from '../../control/compile/compiler.js';
import { createPki, exchange, flagOf, id, NODE_B_IP, plainTcp, req, workload, world, type Pki } from '../helpers/hbone-world.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/eventually.js';
import { store } from '../helpers/config-yaml.js';

let pki: Pki;
test.before(async () => {
  pki = await createPki();
});

test('the SNI names a pod IP in a hostname and decodes back; other names decode to nothing', (t) => {
  t.is(sniForPodIp('10.244.1.3'), '10-244-1-3.pod.nodemesh.internal');
  t.is(podIpFromSni('10-244-1-3.pod.nodemesh.internal'), '10.244.1.3');
  t.is(podIpFromSni(sniForPodIp('fd00::1')), 'fd00::1');
  t.is(podIpFromSni('10-244-1-300.pod.nodemesh.internal'), undefined);
  t.is(podIpFromSni('web.shop.svc.cluster.local'), undefined);
  t.is(podIpFromSni(undefined), undefined);
  t.deepEqual(parseForwardedFor('for="10.244.0.5:41234"'), { ip: '10.244.0.5', port: 41234 });
  t.deepEqual(parseForwardedFor('for="[fd00::5]:80";proto=https'), { ip: 'fd00::5', port: 80 });
});

test('an SVID has exactly one SPIFFE URI SAN; a certificate with two is not one', async (t) => {
  t.deepEqual(svidSpiffeId(new X509Certificate(pki.certs.web.certChainPem)), { id: id('shop', 'web') });
  const two = await pki.ca.issue(id('shop', 'web'), { extraUris: [id('shop', 'db')] });
  const r = svidSpiffeId(new X509Certificate(two.certChainPem));
  t.true('error' in r && /carries 2 URI SANs/.test(r.error), JSON.stringify(r));
});

test('a CONNECT tunnel carries bytes both ways, with half-close, to the pod its authority names', async (t) => {
  const w = await world(t, pki);
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s, 'hello'), 'echo:hello');
  const s2 = await w.connector.connect(req(w.client, w.db, w.dbPort));
  t.is(await exchange(s2, 'db?'), 'echo:db?');
  t.is(w.clientIdentity.requested[0], id('shop', 'client'), 'the client certificate is the SOURCE workload’s');
  t.deepEqual(
    [...new Set(w.serverIdentity.requested)].sort(),
    [id('shop', 'db'), id('shop', 'web')],
    'the server presented each destination’s identity',
  );
});

test('many streams share one connection; another source identity gets its own', async (t) => {
  const w = await world(t, pki);
  const streams = await Promise.all(Array.from({ length: 8 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 1, 'eight concurrent CONNECTs rode one HBONE connection');
  t.is(w.connector.pool.stats().streams, 8);
  const other = await w.connector.connect(req(w.client2, w.web, w.webPort));
  t.is(w.inbound.connections, 2, 'a different source identity never shares a connection');
  const replies = await Promise.all([...streams, other].map((s, i) => exchange(s, `m${i}`)));
  t.deepEqual(
    replies,
    Array.from({ length: 9 }, (_, i) => `echo:m${i}`),
  );
});

test('a connection takes at most maxStreamsPerConnection streams, then another is opened', async (t) => {
  const w = await world(t, pki, { maxStreams: 2 });
  const streams = await Promise.all(Array.from({ length: 5 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 3);
  t.deepEqual(Object.values(w.connector.pool.stats().byKey)[0]!.sort(), [1, 2, 2]);
  await Promise.all(streams.map((s) => exchange(s, 'x')));
});

test("the peer's SETTINGS_MAX_CONCURRENT_STREAMS bounds a connection too", async (t) => {
  const w = await world(t, pki, { serverMaxStreams: 3 });
  const streams = await Promise.all(Array.from({ length: 3 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  // the first connection knows the server's limit now; the next streams go elsewhere
  const more = await Promise.all(Array.from({ length: 2 }, () => w.connector.connect(req(w.client, w.web, w.webPort))));
  t.is(w.inbound.connections, 2);
  await Promise.all([...streams, ...more].map((s) => exchange(s, 'x')));
});

test('an idle connection is closed after the idle timeout', async (t) => {
  const w = await world(t, pki, { idleMs: 150 });
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  await exchange(s, 'x');
  t.is(w.inbound.connections, 1);
  await eventually(() => w.inbound.connections === 0 && w.connector.pool.stats().connections === 0, 20_000, 'the idle connection to close');
  const again = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(again, 'y'), 'echo:y', 'a new connection is dialled afterwards');
});

test('after a certificate rotation new streams use a new connection with the new certificate; the old one drains', async (t) => {
  const w = await world(t, pki);
  const old = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 1);
  w.clientIdentity.set(await pki.ca.issue(id('shop', 'client')));
  const fresh = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 2, 'the rotated certificate dialled a new connection');
  t.is(await exchange(old, 'still here'), 'echo:still here', 'the old connection carried its stream to the end');
  await eventually(() => w.inbound.connections === 1, 20_000, 'the drained connection to close');
  const third = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(w.inbound.connections, 1, 'new streams share the new connection');
  await Promise.all([exchange(fresh, 'a'), exchange(third, 'b')]);
});

test('a GOAWAY takes the connection out of the pool; the next stream dials a new connection to the restarted server and is answered', async (t) => {
  const w = await world(t, pki);
  const s = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(s, 'x'), 'echo:x');
  const port = w.inbound.address.port;
  // node-b's proxy restarts: the old one sends GOAWAY on every session and stops listening...
  await w.inbound.close(true);
  await eventually(() => w.connector.pool.stats().connections === 0, 20_000, 'the pool to drop the connection');
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'UF', 'nothing listens in between: the old connection was not reused');
  // ...and the new one listens on the same port
  const restarted = new HboneInbound({ host: NODE_B_IP, port, node: 'node-b', identity: w.serverIdentity, state: () => new ProxyState(w.snapshot), deliver: w.deliver });
  await restarted.listen();
  t.teardown(() => restarted.close());
  const again = await w.connector.connect(req(w.client, w.web, w.webPort));
  t.is(await exchange(again, 'y'), 'echo:y');
  t.is(restarted.connections, 1, 'over a new connection to the new server');
  t.is(w.connector.pool.stats().connections, 1);
});

test('a server presenting another identity than the destination’s is refused with IDENTITY_ERROR', async (t) => {
  const w = await world(t, pki);
  // the client's view says web runs as shop/api; the server (correctly, by its view) presents shop/web
  const expected = { ...w.web, spiffeId: id('shop', 'api') };
  t.is(await flagOf(w.connector.connect(req(w.client, expected, w.webPort))), 'IDENTITY_ERROR');
  t.is(w.inbound.connections, 0);
});

test('a server certificate from another CA is refused with TLS_FAILURE', async (t) => {
  const w = await world(t, pki);
  w.serverIdentity.set(pki.certs.webFromOtherCa);
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'TLS_FAILURE');
});

test('a client certificate from another CA is refused by the server: TLS_FAILURE', async (t) => {
  const w = await world(t, pki);
  w.clientIdentity.set(pki.certs.clientFromOtherCa);
  w.clientIdentity.setTrustBundle([pki.ca.certPem, pki.otherCa.certPem]);
  t.is(await flagOf(w.connector.connect(req(w.client, w.web, w.webPort))), 'TLS_FAILURE');
});

test('nothing listening on the node is UF; a peer that is not HTTP/2 is H2_HANDSHAKE_FAILURE', async (t) => {
  const w = await world(t, pki);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, NODE_B_IP, r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  // room for a TLS handshake on a loaded machine: both failures come long before it
  const refused = new HboneConnector({ identity: w.clientIdentity, nodeIp: () => NODE_B_IP, port, connectTimeoutMs: 15_000 });
  t.teardown(() => refused.close());
  t.is(await flagOf(refused.connect(req(w.client, w.web, w.webPort))), 'UF');

  // valid TLS with the right identity and ALPN h2, then HTTP/1.1 instead of a SETTINGS frame
  const accepted = new Set<tls.TLSSocket>();
  const notH2 = tls.createServer(
    { cert: pki.certs.web.certChainPem, key: pki.certs.web.keyPem, ALPNProtocols: ['h2'], ca: [pki.ca.certPem], requestCert: true },
    (s) => {
      accepted.add(s);
      s.on('error', () => {});
      s.write('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
    },
  );
  await new Promise<void>((r) => notH2.listen(0, NODE_B_IP, r));
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    return new Promise<void>((r) => notH2.close(() => r()));
  });
  const c = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: () => NODE_B_IP,
    port: (notH2.address() as net.AddressInfo).port,
    connectTimeoutMs: 15_000,
  });
  t.teardown(() => c.close());
  t.is(await flagOf(c.connect(req(w.client, w.web, w.webPort))), 'H2_HANDSHAKE_FAILURE');
});

test('the CONNECT carries :authority, forwarded and traceparent as ztunnel sends them; an unanswered CONNECT fails', async (t) => {
  const w = await world(t, pki);
  const seen: http2.IncomingHttpHeaders[] = [];
  // a peer proxy that records the request headers: 200 for port 1, never answers port 2
  const peer = http2.createSecureServer({
    cert: pki.certs.web.certChainPem,
    key: pki.certs.web.keyPem,
    ca: [pki.ca.certPem],
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
  });
  peer.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.on('error', () => {});
    if (headers[':authority']?.endsWith(':1')) stream.respond({ ':status': 200 });
  });
  await new Promise<void>((r) => peer.listen(0, NODE_B_IP, r));
  const c = new HboneConnector({
    identity: w.clientIdentity,
    nodeIp: () => NODE_B_IP,
    port: (peer.address() as net.AddressInfo).port,
    // covers the TLS handshake too: room for it on a loaded machine
    connectTimeoutMs: 2_000,
  });
  t.teardown(() => {
    c.close();
    return new Promise<void>((r) => peer.close(() => r()));
  });
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const s = await c.connect(req(w.client, w.web, 1, { sourceAddress: '10.244.0.7', sourcePort: 41234, traceparent }));
  s.destroy();
  t.is(seen[0]![':method'], 'CONNECT');
  t.is(seen[0]![':authority'], `${w.web.ip}:1`);
  t.is(seen[0]![':path'], undefined, 'CONNECT has no :path');
  t.is(seen[0]!.forwarded, 'for="10.244.0.7:41234"');
  t.is(seen[0]!.traceparent, traceparent);
  const started = Date.now();
  t.is(await flagOf(c.connect(req(w.client, w.web, 2))), 'CONNECT');
  t.true(Date.now() - started >= 1_950, 'it waited for the connect timeout');
});

test.serial('same node: the mesh connector delivers through the inbound side without TLS, with the source principal known', async (t) => {
  const w = await world(t, pki);
  const local = workload('local-client', 'node-b', '10.99.0.7', 'client');
  w.snapshot.workloads.push(local);
  const mesh = new MeshConnector({ node: 'node-b', hbone: w.connector, tcp: plainTcp, local: w.deliver });
  const r = req(local, w.web, w.webPort);
  t.is(mesh.path(r), 'local');
  t.deepEqual(mesh.security(r), { policy: 'mutual_tls', sourcePrincipal: id('shop', 'client'), destinationPrincipal: id('shop', 'web') });
  const labels = {
    reporter: 'destination',
    source_principal: id('shop', 'client'),
    destination_workload: 'web',
    connection_security_policy: 'mutual_tls',
  };
  const before = await metricValue('istio_tcp_connections_opened_total', labels);
  const s = await mesh.connect(r);
  t.is(await exchange(s, 'near'), 'echo:near');
  t.is(w.inbound.connections, 0, 'no HBONE connection was made');
  t.is(w.clientIdentity.requested.length + w.serverIdentity.requested.length, 0, 'no certificate was needed');
  t.is((await metricValue('istio_tcp_connections_opened_total', labels)) - before, 1);

  // other node → HBONE; not meshed → plain TCP, principals unproven
  t.is(mesh.path(req(local, w.far, 8080)), 'hbone');
  const toPlain = req(local, w.plain, 8080);
  t.is(mesh.path(toPlain), 'tcp');
  t.is(mesh.security(toPlain), undefined);
});

test('same node: a refused pod connection rejects the connect with the delivery’s flag', async (t) => {
  const w = await world(t, pki);
  const local = workload('local-client2', 'node-b', '10.99.0.8', 'client');
  const mesh = new MeshConnector({ node: 'node-b', hbone: w.connector, tcp: plainTcp, local: w.deliver });
  t.is(await flagOf(mesh.connect(req(local, w.web, 1))), 'UF');
});

test('the snapshot carries each node with its proxy address: the InternalIP, else a pod’s hostIP', (t) => {
  const yaml = `
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: Hostname, address: node-a}, {type: InternalIP, address: 172.31.250.10}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-c}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec: {nodeName: node-b, containers: [{name: main}]}
status: {podIP: 10.244.1.2, hostIP: 172.31.250.11}
---
apiVersion: v1
kind: Pod
metadata: {name: q, namespace: shop}
spec: {nodeName: node-a, containers: [{name: main}]}
status: {podIP: 10.244.0.2, hostIP: 172.31.250.99}
`;
  const stored = store(yaml, '/config/nodes.yaml');
  t.deepEqual(
    stored.statuses.filter((s) => s.state === 'Rejected'),
    [],
  );
  t.deepEqual(compileSnapshot(stored.resources).nodes, [
    { name: 'node-a', ip: '172.31.250.10' },
    { name: 'node-b', ip: '172.31.250.11' },
    { name: 'node-c', ip: '' },
  ]);
});
