// Inbound delivery as a specification, with real sockets: a real HTTP (or TCP echo) server
// plays the pod; a TCP listener plays the node proxy's inbound port and hands every
// accepted socket to deliverInbound, resetting it when the delivery is refused (as the
// plaintext capture on 15006 does); clients are Node's http client and raw sockets.
// Policies go through the real control-plane path (YAML → validation → compiler).
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { eventually } from '../helpers/eventually.js';
import { echoPod, inbound, listenLoopback, mtlsFrom, PLAINTEXT, rawExchange, type Peer } from '../helpers/inbound-listener.js';
import { metricValue } from '../helpers/metrics.js';
import { authorizationPolicy, peerAuthentication, spiffe } from '../helpers/config-yaml.js';

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
  return { port: await listenLoopback(t, server), seen };
}

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

const FROM_CLIENT = mtlsFrom('shop', 'client');
const DENIALS = 'nodemesh_agent_authorization_denials_total';

// --- refused at accept: reset before any byte reaches the pod -----------------------------

interface RefusedCase {
  title: string;
  policy: string;
  peer: Peer;
  data: string;
  reason: RegExp;
  /** the denial counter's labels; a case that reads the shared counter runs serially */
  counted?: Record<string, string>;
}

const REFUSED_AT_ACCEPT: RefusedCase[] = [
  {
    title: 'STRICT refuses plaintext: the connection is reset before any byte reaches the pod',
    policy: peerAuthentication('istio-system', 'default', { mtls: { mode: 'STRICT' } }),
    peer: PLAINTEXT,
    data: 'hello',
    reason: /STRICT.*istio-system\/default/,
    counted: { reason: 'mtls_strict' },
  },
  {
    title: 'an L4-denied connection is closed: a DENY on the source namespace resets it, and the denial is counted by policy',
    policy: authorizationPolicy('shop', 'no-dev', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['dev'] } }] }] }),
    peer: mtlsFrom('dev', 'tester'),
    data: 'let me in',
    reason: /denied by AuthorizationPolicy shop\/no-dev/,
    counted: { policy: 'shop/no-dev', layer: 'tcp', reason: 'deny_policy' },
  },
  {
    title: 'ALLOW with no rules (allow-nothing) denies every connection at accept',
    policy: authorizationPolicy('shop', 'allow-nothing', {}, 'security.istio.io/v1beta1'),
    peer: FROM_CLIENT,
    data: 'x',
    reason: /ALLOW policies exist for the workload and none matches/,
  },
];

for (const c of REFUSED_AT_ACCEPT) {
  (c.counted ? test.serial : test)(c.title, async (t) => {
    const ib = await inbound(t, [c.policy], await echoPod(t), c.peer);
    const before = c.counted && (await metricValue(DENIALS, c.counted));
    const r = await rawExchange(ib.port, c.data);
    t.is(r.received, '');
    t.is(r.closedBy, 'reset');
    t.like(ib.results[0], { delivered: false, flag: 'DENY' });
    t.regex((ib.results[0] as { reason: string }).reason, c.reason);
    if (c.counted) t.is(await metricValue(DENIALS, c.counted), before! + 1);
  });
}

// --- delivered as a byte stream --------------------------------------------------------------

test.serial(
  'STRICT with a PERMISSIVE port: plaintext to that port is delivered and reported as connection_security_policy="none"',
  async (t) => {
    const pod = await echoPod(t);
    const strictButPod = peerAuthentication('shop', 'server', {
      selector: { matchLabels: { app: 'server' } },
      mtls: { mode: 'STRICT' },
      portLevelMtls: { [pod]: { mode: 'PERMISSIVE' } },
    });
    const ib = await inbound(t, [strictButPod], pod, PLAINTEXT);
    const r = await rawExchange(ib.port, 'ping over plaintext');
    t.is(r.received, 'ping over plaintext');
    t.deepEqual(ib.results, [{ delivered: true }]);
    const plaintext = { reporter: 'destination', destination_workload: 'server', connection_security_policy: 'none' };
    await eventually(async () => (await metricValue('istio_tcp_connections_closed_total', plaintext)) >= 1, 20_000);
    t.true((await metricValue('istio_tcp_received_bytes_total', plaintext)) >= 'ping over plaintext'.length);
  },
);

test.serial('mTLS to a STRICT workload is delivered, with the principals in the destination telemetry', async (t) => {
  const ib = await inbound(t, [peerAuthentication('shop', 'default', { mtls: { mode: 'STRICT' } })], await echoPod(t), FROM_CLIENT);
  const r = await rawExchange(ib.port, 'over the tunnel');
  t.is(r.received, 'over the tunnel');
  await eventually(
    async () => (await metricValue('istio_tcp_connections_closed_total', { source_principal: spiffe('shop', 'client') })) >= 1,
    20_000,
  );
  t.is(
    await metricValue('istio_tcp_connections_opened_total', {
      reporter: 'destination',
      source_principal: spiffe('shop', 'client'),
      destination_principal: spiffe('shop', 'server'),
      connection_security_policy: 'mutual_tls',
    }),
    1,
  );
});

test('a workload without HTTP rules is a byte pipe: a non-HTTP protocol passes untouched', async (t) => {
  const fromShop = authorizationPolicy('shop', 'from-shop', { rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] });
  const ib = await inbound(t, [fromShop], await echoPod(t), FROM_CLIENT);
  const r = await rawExchange(ib.port, '\u0000\u0001binary, not HTTP\r\n');
  t.is(r.received, '\u0000\u0001binary, not HTTP\r\n');
});

test.serial(
  'with HTTP rules, a stream that is neither HTTP/1.x nor h2c is authorised as TCP: an ALLOW rule with HTTP fields does not match it, so it is closed',
  async (t) => {
    const getOnly = authorizationPolicy('shop', 'get-only', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
    const ib = await inbound(t, [getOnly], await echoPod(t), FROM_CLIENT);
    const before = await metricValue(DENIALS, { reason: 'no_allow_match', layer: 'tcp' });
    // a client-first binary protocol (h2c is served per request: inbound-h2c.test.ts)
    const r = await rawExchange(ib.port, 'SSH-2.0-OpenSSH_9.6\r\n');
    t.is(r.received, '');
    t.deepEqual(ib.results, [{ delivered: true }], 'delivered at accept (the decision needed the first bytes)');
    t.is(await metricValue(DENIALS, { reason: 'no_allow_match', layer: 'tcp' }), before + 1);
  },
);

// --- HTTP: authorised request by request --------------------------------------------------

test('with HTTP rules, a denied request gets 403 "RBAC: access denied" and an allowed one on the same connection reaches the pod', async (t) => {
  const pod = await httpPod(t);
  const denyGetWithoutToken = authorizationPolicy(
    'shop',
    'deny-method-get',
    `selector: {matchLabels: {app: server}}
  action: DENY
  rules:
  - to:
    - operation: {methods: ["GET"]}
    when:
    - key: request.headers[x-token]
      notValues: ["admin"]`,
    'security.istio.io/v1beta1',
  );
  const ib = await inbound(t, [denyGetWithoutToken], pod.port, FROM_CLIENT);
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
  const onlyReads = authorizationPolicy('shop', 'only-reads', { rules: [{ to: [{ operation: { methods: ['GET', 'HEAD'] } }] }] });
  const ib = await inbound(t, [onlyReads], pod.port, PLAINTEXT);
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
  const noAdmin = authorizationPolicy('shop', 'no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] });
  const ib = await inbound(t, [noAdmin], pod.port, PLAINTEXT);
  const viaDots = await rawExchange(ib.port, 'GET /public/../admin/users HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  const encoded = await rawExchange(ib.port, 'GET /%61dmin HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  const ok = await rawExchange(ib.port, 'GET /public/./a/../index.html HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n');
  t.regex(viaDots.received, /^HTTP\/1\.1 403/);
  t.regex(encoded.received, /^HTTP\/1\.1 403/);
  t.regex(ok.received, /^HTTP\/1\.1 200[\s\S]*pod saw GET \/public\/index\.html$/);
  t.deepEqual(pod.seen, ['GET /public/index.html']);
});

/** Only requests to `path` are allowed. */
const onlyPath = (name: string, path: string) => authorizationPolicy('shop', name, { rules: [{ to: [{ operation: { paths: [path] } }] }] });

test('Expect: 100-continue — a denied request gets its 403 without a 100 Continue; an allowed one gets 100 Continue and its body reaches the pod', async (t) => {
  const pod = await httpPod(t);
  const ib = await inbound(t, [onlyPath('uploads', '/upload')], pod.port, PLAINTEXT);
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
  const ib = await inbound(t, [onlyPath('ws', '/ws')], await listenLoopback(t, server), PLAINTEXT);
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
