// Inbound delivery as a specification, with real sockets: a real HTTP (or TCP echo) server
// plays the pod; a TCP listener plays the node proxy's inbound port and hands every
// accepted socket to deliverInbound, resetting it when the delivery is refused (as the
// plaintext capture on 15006 does); clients are Node's http client and raw sockets.
// Policies go through the real control-plane path (YAML → validation → compiler).
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { deliverInbound, type InboundConnection, type InboundResult } from '../../agent/proxy/inbound-delivery.js';
import { SecurityIndex } from '../../agent/policy/authorization.js';
import { registry } from '../../agent/telemetry/metrics.js';
import { TcpConnector, type UpstreamConnector } from '../../agent/transport/connector.js';
import type { Workload } from '../../control/api/snapshot.js';
import { compileYaml, podYaml, spiffe } from '../helpers/security-config.js';

/** The "pod": an HTTP server answering with what it received. */
async function httpPod(t: ExecutionContext): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}${body ? ` ${body}` : ''}`);
      res.end(`pod saw ${req.method} ${req.url}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, seen };
}

/** The "pod" for TCP: echoes every byte. */
async function echoPod(t: ExecutionContext): Promise<number> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** The agent's own plain TCP connector, unmarked (tests run without CAP_NET_ADMIN). */
const connector: UpstreamConnector = new TcpConnector(undefined, 5_000);

interface Inbound {
  port: number;
  results: InboundResult[];
}

/** The node proxy's inbound listener: every socket goes to deliverInbound as `conn`. */
async function inbound(
  t: ExecutionContext,
  yaml: string,
  conn: Omit<InboundConnection, 'destination' | 'sourceIp' | 'sourcePort'>,
): Promise<Inbound> {
  const snapshot = compileYaml(yaml);
  const destination: Workload = { ...snapshot.workloads.find((w) => w.name === 'server')!, ip: '127.0.0.1' };
  const security = SecurityIndex.of(snapshot.security);
  const results: InboundResult[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    void deliverInbound(socket, { ...conn, destination, sourceIp: socket.remoteAddress!, sourcePort: socket.remotePort! }, connector, {
      security,
    }).then((r) => {
      results.push(r);
      if (!r.delivered) socket.resetAndDestroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, results };
}

const SERVER_POD = podYaml('server', { ns: 'shop', labels: { app: 'server' }, sa: 'server' });

function request(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Connects, writes, and reports what came back and whether the socket was reset or closed. */
function rawExchange(port: number, data: string): Promise<{ received: string; closedBy: 'reset' | 'end' }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let received = '';
    s.on('data', (d: Buffer) => {
      received += d.toString();
      if (received === data) s.end();
    });
    s.on('error', () => resolve({ received, closedBy: 'reset' }));
    s.on('close', (hadError) => resolve({ received, closedBy: hadError ? 'reset' : 'end' }));
    s.write(data);
  });
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v ? Number(v.value) : 0;
}

test.serial('STRICT refuses plaintext: the connection is reset before any byte reaches the pod', async (t) => {
  const pod = await echoPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: undefined, security: 'none' });
  const before = await metric('nodemesh_agent_authorization_denials_total', { reason: 'mtls_strict' });
  const r = await rawExchange(ib.port, 'hello');
  t.is(r.received, '');
  t.is(r.closedBy, 'reset');
  t.like(ib.results[0], { delivered: false, flag: 'DENY' });
  t.regex((ib.results[0] as { reason: string }).reason, /STRICT.*istio-system\/default/);
  t.is(await metric('nodemesh_agent_authorization_denials_total', { reason: 'mtls_strict' }), before + 1);
});

test.serial(
  'STRICT with a PERMISSIVE port: plaintext to that port is delivered and reported as connection_security_policy="none"',
  async (t) => {
    const pod = await echoPod(t);
    const yaml = [
      SERVER_POD,
      `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: server, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: STRICT}
  portLevelMtls:
    ${pod}: {mode: PERMISSIVE}
`,
    ].join('---\n');
    const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: undefined, security: 'none' });
    const r = await rawExchange(ib.port, 'ping over plaintext');
    t.is(r.received, 'ping over plaintext');
    t.deepEqual(ib.results, [{ delivered: true }]);
    await waitFor(
      async () =>
        (await metric('istio_tcp_connections_closed_total', {
          reporter: 'destination',
          destination_workload: 'server',
          connection_security_policy: 'none',
        })) >= 1,
    );
    t.true(
      (await metric('istio_tcp_received_bytes_total', {
        reporter: 'destination',
        destination_workload: 'server',
        connection_security_policy: 'none',
      })) >= 'ping over plaintext'.length,
    );
  },
);

test.serial('mTLS to a STRICT workload is delivered, with the principals in the destination telemetry', async (t) => {
  const pod = await echoPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: spiffe('shop', 'client'), security: 'mutual_tls' });
  const r = await rawExchange(ib.port, 'over the tunnel');
  t.is(r.received, 'over the tunnel');
  await waitFor(async () => (await metric('istio_tcp_connections_closed_total', { source_principal: spiffe('shop', 'client') })) >= 1);
  t.is(
    await metric('istio_tcp_connections_opened_total', {
      reporter: 'destination',
      source_principal: spiffe('shop', 'client'),
      destination_principal: spiffe('shop', 'server'),
      connection_security_policy: 'mutual_tls',
    }),
    1,
  );
});

test.serial(
  'an L4-denied connection is closed: a DENY on the source namespace resets it, and the denial is counted by policy',
  async (t) => {
    const pod = await echoPod(t);
    const yaml = [
      SERVER_POD,
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-dev, namespace: shop}
spec:
  action: DENY
  rules:
  - from:
    - source: {namespaces: [dev]}
`,
    ].join('---\n');
    const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: spiffe('dev', 'tester'), security: 'mutual_tls' });
    const before = await metric('nodemesh_agent_authorization_denials_total', { policy: 'shop/no-dev', layer: 'tcp' });
    const r = await rawExchange(ib.port, 'let me in');
    t.is(r.received, '');
    t.is(r.closedBy, 'reset');
    t.like(ib.results[0], { delivered: false, flag: 'DENY' });
    t.regex((ib.results[0] as { reason: string }).reason, /denied by AuthorizationPolicy shop\/no-dev/);
    t.is(
      await metric('nodemesh_agent_authorization_denials_total', { policy: 'shop/no-dev', layer: 'tcp', reason: 'deny_policy' }),
      before + 1,
    );
  },
);

test('with HTTP rules, a denied request gets 403 "RBAC: access denied" and an allowed one on the same connection reaches the pod', async (t) => {
  const pod = await httpPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-method-get, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules:
  - to:
    - operation: {methods: ["GET"]}
    when:
    - key: request.headers[x-token]
      notValues: ["admin"]
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod.port, sourcePrincipal: spiffe('shop', 'client'), security: 'mutual_tls' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const denied = await request(agent, ib.port, 'GET', '/headers');
  const allowed = await request(agent, ib.port, 'GET', '/headers', { 'x-token': 'admin' });
  const post = await request(agent, ib.port, 'POST', '/anything');
  t.deepEqual(denied, { status: 403, body: 'RBAC: access denied' });
  t.deepEqual(allowed, { status: 200, body: 'pod saw GET /headers' });
  t.deepEqual(post, { status: 200, body: 'pod saw POST /anything' });
  t.deepEqual(pod.seen, ['GET /headers', 'POST /anything']);
  t.is(ib.results.length, 1, 'one connection carried the three requests');
});

test("keep-alive with a request body: the denied request's body is discarded, the next request is read correctly", async (t) => {
  const pod = await httpPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-reads, namespace: shop}
spec:
  rules:
  - to:
    - operation: {methods: ["GET", "HEAD"]}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod.port, sourcePrincipal: undefined, security: 'none' });
  const r = await rawExchange(
    ib.port,
    'POST /upload HTTP/1.1\r\nHost: server\r\nContent-Length: 11\r\n\r\nhello worldGET /ok HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n',
  ).catch(() => ({ received: '', closedBy: 'reset' as const }));
  t.regex(r.received, /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*\r\n\r\nRBAC: access denied/);
  t.regex(r.received, /HTTP\/1\.1 200 OK[\s\S]*pod saw GET \/ok$/);
  t.deepEqual(pod.seen, ['GET /ok']);
});

test('the path is normalised before it is evaluated and forwarded: /public/../admin is denied like /admin', async (t) => {
  const pod = await httpPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin*"]}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod.port, sourcePrincipal: undefined, security: 'none' });
  const viaDots = await rawExchange(ib.port, 'GET /public/../admin/users HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  const encoded = await rawExchange(ib.port, 'GET /%61dmin HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  const ok = await rawExchange(ib.port, 'GET /public/./a/../index.html HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  t.regex(viaDots.received, /^HTTP\/1\.1 403/);
  t.regex(encoded.received, /^HTTP\/1\.1 403/);
  t.regex(ok.received, /^HTTP\/1\.1 200[\s\S]*pod saw GET \/public\/index\.html$/);
  t.deepEqual(pod.seen, ['GET /public/index.html']);
});

test('Expect: 100-continue — a denied request gets its 403 without a 100 Continue; an allowed one gets 100 Continue and its body reaches the pod', async (t) => {
  const pod = await httpPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: uploads, namespace: shop}
spec:
  rules:
  - to:
    - operation: {paths: ["/upload"]}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod.port, sourcePrincipal: undefined, security: 'none' });
  const exchange = (path: string) =>
    new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: ib.port });
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !got.includes('200')) s.write('hello');
      });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      s.write(`POST ${path} HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    });
  t.regex(await exchange('/other'), /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*RBAC: access denied$/);
  const allowed = await exchange('/upload');
  t.regex(allowed, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*pod saw POST \/upload$/);
  t.deepEqual(pod.seen, ['POST /upload hello']);
});

test('an Upgrade request (WebSocket) is authorised like any request, then becomes a byte pipe to the pod', async (t) => {
  const server = http.createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Path: ${req.url}\r\n\r\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const podPort = (server.address() as net.AddressInfo).port;
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ws, namespace: shop}
spec:
  rules:
  - to:
    - operation: {paths: ["/ws"]}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: podPort, sourcePrincipal: undefined, security: 'none' });
  const upgrade = (path: string) =>
    new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: ib.port });
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && got.startsWith('HTTP/1.1 101') && !got.endsWith('ping')) s.write('ping');
        else if (got.endsWith('ping')) s.end();
      });
      s.on('close', () => resolve(got));
      s.write(`GET ${path} HTTP/1.1\r\nHost: s\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n`);
    });
  t.regex(await upgrade('/other'), /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*RBAC: access denied$/);
  t.regex(await upgrade('/ws'), /^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*X-Path: \/ws\r\n\r\nping$/);
});

test('a workload without HTTP rules is a byte pipe: a non-HTTP protocol passes untouched', async (t) => {
  const pod = await echoPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-shop, namespace: shop}
spec:
  rules:
  - from:
    - source: {namespaces: [shop]}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: spiffe('shop', 'client'), security: 'mutual_tls' });
  const r = await rawExchange(ib.port, '\u0000\u0001binary, not HTTP\r\n');
  t.is(r.received, '\u0000\u0001binary, not HTTP\r\n');
});

test.serial(
  'with HTTP rules, a stream that is neither HTTP/1.x nor h2c is authorised as TCP: an ALLOW rule with HTTP fields does not match it, so it is closed',
  async (t) => {
    const pod = await echoPod(t);
    const yaml = [
      SERVER_POD,
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: get-only, namespace: shop}
spec:
  rules:
  - to:
    - operation: {methods: ["GET"]}
`,
    ].join('---\n');
    const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: spiffe('shop', 'client'), security: 'mutual_tls' });
    const before = await metric('nodemesh_agent_authorization_denials_total', { reason: 'no_allow_match', layer: 'tcp' });
    // a client-first binary protocol (h2c is served per request: inbound-h2c.test.ts)
    const r = await rawExchange(ib.port, 'SSH-2.0-OpenSSH_9.6\r\n');
    t.is(r.received, '');
    t.deepEqual(ib.results, [{ delivered: true }], 'delivered at accept (the decision needed the first bytes)');
    t.is(await metric('nodemesh_agent_authorization_denials_total', { reason: 'no_allow_match', layer: 'tcp' }), before + 1);
  },
);

test('ALLOW with no rules (allow-nothing) denies every connection at accept', async (t) => {
  const pod = await echoPod(t);
  const yaml = [
    SERVER_POD,
    `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: shop}
spec:
  {}
`,
  ].join('---\n');
  const ib = await inbound(t, yaml, { port: pod, sourcePrincipal: spiffe('shop', 'client'), security: 'mutual_tls' });
  const r = await rawExchange(ib.port, 'x');
  t.is(r.closedBy, 'reset');
  t.like(ib.results[0], { delivered: false, flag: 'DENY' });
  t.regex((ib.results[0] as { reason: string }).reason, /ALLOW policies exist for the workload and none matches/);
});

async function waitFor(cond: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
