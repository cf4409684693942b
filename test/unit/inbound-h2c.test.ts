// h2c (HTTP/2 with prior knowledge, gRPC) at the destination, with real sockets: a TCP
// listener plays the node proxy's inbound port and hands every accepted socket to
// deliverInbound (or, for HBONE's shape, an h2c server hands every CONNECT stream to it);
// a real grpc-js server or a node:http2 server plays the pod. Policies go through the real
// control-plane path (YAML → validation → compiler).
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net from 'node:net';
import { echoPod, inbound, listenLoopback, mtlsFrom, rawExchange, type Transport } from '../helpers/inbound-listener.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/eventually.js';
import { rawMethod } from '../helpers/raw-grpc.js';
import { authorizationPolicy } from '../helpers/config-yaml.js';

/** An h2c client session to the inbound side: directly, or inside a CONNECT stream. */
async function h2cClient(t: ExecutionContext, port: number, transport: Transport): Promise<http2.ClientHttp2Session> {
  if (transport === 'tcp') {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    t.teardown(() => s.destroy());
    return s;
  }
  const outer = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => outer.destroy());
  const tunnel = outer.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${port}` });
  await new Promise<void>((resolve, reject) => {
    tunnel.once('response', (h) => (h[':status'] === 200 ? resolve() : reject(new Error(`CONNECT ${h[':status']}`))));
    tunnel.once('error', reject);
  });
  const s = http2.connect('http://server.shop', { createConnection: () => tunnel as unknown as net.Socket });
  t.teardown(() => s.destroy());
  return s;
}

function h2request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ headers: http2.IncomingHttpHeaders; body: string; trailers?: http2.IncomingHttpHeaders; endedWithHeaders: boolean }> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers, { endStream: body === undefined });
    let head: http2.IncomingHttpHeaders = {};
    let endedWithHeaders = false;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let out = '';
    s.on('response', (h, flags) => {
      head = h;
      endedWithHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    s.on('trailers', (h) => (trailers = h));
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve({ headers: head, body: out, trailers, endedWithHeaders }));
    s.on('error', reject);
    if (body !== undefined) s.end(body);
  });
}

const FROM_CLIENT = mtlsFrom('shop', 'client');

/** Requests with `method` are denied to shop/server. */
const denyMethod = (name: string, method: string) =>
  authorizationPolicy('shop', name, {
    selector: { matchLabels: { app: 'server' } },
    action: 'DENY',
    rules: [{ to: [{ operation: { methods: [method] } }] }],
  });

// --- gRPC ---------------------------------------------------------------------------------

const svc = {
  allowed: rawMethod('/pkg.Svc/Allowed'),
  allowedStream: rawMethod('/pkg.Svc/AllowedStream', false, true),
  allowedChat: rawMethod('/pkg.Svc/AllowedChat', true, true),
  other: rawMethod('/pkg.Svc/Other'),
} as grpc.ServiceDefinition;

interface SvcClient extends grpc.Client {
  allowed(b: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): grpc.ClientUnaryCall;
  allowedStream(b: Buffer): grpc.ClientReadableStream<Buffer>;
  allowedChat(): grpc.ClientDuplexStream<Buffer, Buffer>;
  other(b: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): grpc.ClientUnaryCall;
}

/** The "pod": a grpc-js server; `seen` lists the methods it was called with. */
async function grpcPod(t: ExecutionContext): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = new grpc.Server();
  server.addService(svc, {
    allowed: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push('Allowed');
      const trailer = new grpc.Metadata();
      trailer.set('x-pod-trailer', 'unary');
      cb(null, Buffer.from(`hello ${call.request.toString()}`), trailer);
    },
    allowedStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen.push('AllowedStream');
      let i = 0;
      const tick = () => {
        if (i === 3) {
          const trailer = new grpc.Metadata();
          trailer.set('x-pod-trailer', 'stream');
          call.end(trailer);
          return;
        }
        call.write(Buffer.from(`${call.request.toString()}-${i++}`));
        setTimeout(tick, 5);
      };
      tick();
    },
    allowedChat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      seen.push('AllowedChat');
      call.on('data', (b: Buffer) => call.write(Buffer.from(`echo ${b.toString()}`)));
      call.on('end', () => call.end());
    },
    other: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push('Other');
      cb(null, Buffer.from('should not happen'));
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  t.teardown(() => server.forceShutdown());
  return { port, seen };
}

const ALLOW_ONLY_ALLOWED = authorizationPolicy('shop', 'only-allowed', {
  selector: { matchLabels: { app: 'server' } },
  action: 'ALLOW',
  rules: [{ to: [{ operation: { paths: ['/pkg.Svc/Allowed', '/pkg.Svc/AllowedStream', '/pkg.Svc/AllowedChat'] } }] }],
});

test.serial(
  'gRPC (grpc-js client and server) to a workload with an ALLOW on paths: allowed methods answer (unary, server streaming, bidi, with trailers), another method gets PERMISSION_DENIED "RBAC: access denied" as Envoy answers gRPC, never reaching the pod',
  async (t) => {
    const pod = await grpcPod(t);
    const ib = await inbound(t, [ALLOW_ONLY_ALLOWED], pod.port, FROM_CLIENT);
    const Client = grpc.makeGenericClientConstructor(svc, 'Svc');
    const client = new Client(`127.0.0.1:${ib.port}`, grpc.credentials.createInsecure()) as unknown as SvcClient;
    t.teardown(() => client.close());
    const deniedBefore = await metricValue('nodemesh_agent_authorization_denials_total', {
      policy: '-',
      layer: 'http',
      reason: 'no_allow_match',
    });

    // unary, with its trailing metadata
    const unary = await new Promise<{ answer: string; trailer: unknown }>((resolve, reject) => {
      let trailer: unknown;
      const call = client.allowed(Buffer.from('mesh'), (e, r) =>
        e ? reject(e) : setImmediate(() => resolve({ answer: r!.toString(), trailer })),
      );
      call.on('status', (s: grpc.StatusObject) => (trailer = s.metadata.get('x-pod-trailer')[0]));
    });
    t.deepEqual(unary, { answer: 'hello mesh', trailer: 'unary' });

    // server streaming: every message, then OK with the pod's trailer
    const streamed = await new Promise<{ messages: string[]; status: grpc.StatusObject }>((resolve, reject) => {
      const messages: string[] = [];
      const call = client.allowedStream(Buffer.from('m'));
      call.on('data', (b: Buffer) => messages.push(b.toString()));
      call.on('error', reject);
      call.on('status', (status: grpc.StatusObject) => resolve({ messages, status }));
    });
    t.deepEqual(streamed.messages, ['m-0', 'm-1', 'm-2']);
    t.is(streamed.status.code, grpc.status.OK);
    t.deepEqual(streamed.status.metadata.get('x-pod-trailer'), ['stream']);

    // bidi: the request body streams up while answers stream down
    const chat = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const call = client.allowedChat();
      call.on('data', (b: Buffer) => {
        got.push(b.toString());
        if (got.length === 1) call.write(Buffer.from('two'));
        else call.end();
      });
      call.on('error', reject);
      call.on('status', () => resolve(got));
      call.write(Buffer.from('one'));
    });
    t.deepEqual(chat, ['echo one', 'echo two']);

    // the method outside the ALLOW: PERMISSION_DENIED with Envoy's RBAC message
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.other(Buffer.from('x'), (e) => (e ? resolve(e) : reject(new Error('Other was allowed')))),
    );
    t.is(err.code, grpc.status.PERMISSION_DENIED);
    t.is(err.details, 'RBAC: access denied');
    t.deepEqual(pod.seen, ['Allowed', 'AllowedStream', 'AllowedChat']);
    t.is(
      await metricValue('nodemesh_agent_authorization_denials_total', { policy: '-', layer: 'http', reason: 'no_allow_match' }),
      deniedBefore + 1,
    );
    // one inbound connection carried every call
    t.is(ib.results.length, 1);
    t.like(ib.results[0], { delivered: true });
  },
);

for (const transport of ['tcp', 'tunnel'] as const) {
  const over = transport === 'tcp' ? 'a plain TCP connection' : "an HTTP/2 CONNECT stream (HBONE's shape)";
  test.serial(
    `a denied gRPC request over ${over} gets Envoy's gRPC local reply: trailers-only :status 200, grpc-status 7, grpc-message "RBAC: access denied"`,
    async (t) => {
      const pod = await grpcPod(t);
      const ib = await inbound(t, [ALLOW_ONLY_ALLOWED], pod.port, FROM_CLIENT, transport);
      const session = await h2cClient(t, ib.port, transport);
      const r = await h2request(
        session,
        { ':method': 'POST', ':path': '/pkg.Svc/Other', 'content-type': 'application/grpc', te: 'trailers' },
        '\0\0\0\0\0',
      );
      t.is(Number(r.headers[':status']), 200);
      t.is(r.headers['content-type'], 'application/grpc');
      t.is(r.headers['grpc-status'], '7');
      t.is(r.headers['grpc-message'], 'RBAC: access denied');
      t.true(r.endedWithHeaders);
      t.is(r.body, '');
      t.deepEqual(pod.seen, []);
    },
  );

  test.serial(
    `h2c over ${over}: a DENY on methods [GET] answers GET 403 "RBAC: access denied" while POST on the same connection reaches the pod (path normalised, body and trailers both ways)`,
    async (t) => {
      const seen: string[] = [];
      const podServer = http2.createServer();
      podServer.on('stream', (s, headers) => {
        let body = '';
        s.on('data', (d: Buffer) => (body += d.toString()));
        s.on('end', () => {
          seen.push(`${headers[':method']} ${headers[':path']} ${body}`);
          s.respond({ ':status': 201, 'x-pod': 'yes' }, { waitForTrailers: true });
          s.on('wantTrailers', () => s.sendTrailers({ 'x-done': '1' }));
          s.end(`pod saw ${headers[':method']} ${headers[':path']}`);
        });
      });
      const ib = await inbound(t, [denyMethod('deny-get', 'GET')], await listenLoopback(t, podServer), FROM_CLIENT, transport);
      const session = await h2cClient(t, ib.port, transport);
      const before = await metricValue('nodemesh_agent_authorization_denials_total', { policy: 'shop/deny-get', layer: 'http' });

      const get = await h2request(session, { ':method': 'GET', ':path': '/items' });
      t.is(Number(get.headers[':status']), 403);
      t.is(get.body, 'RBAC: access denied');

      const post = await h2request(session, { ':method': 'POST', ':path': '/a/../items?x=1' }, 'payload');
      t.is(Number(post.headers[':status']), 201);
      t.is(post.headers['x-pod'], 'yes');
      t.is(post.body, 'pod saw POST /items?x=1');
      t.is(post.trailers?.['x-done'], '1');

      t.deepEqual(seen, ['POST /items?x=1 payload']);
      t.is(await metricValue('nodemesh_agent_authorization_denials_total', { policy: 'shop/deny-get', layer: 'http' }), before + 1);
      t.is(ib.results.length, 1);
    },
  );
}

// --- no L7 rules: h2c is never parsed ------------------------------------------------------

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const NOT_HTTP2 = `${PREFACE}this is no HTTP/2 frame at all\n`;

test.serial(
  'a workload without L7 rules never gets its h2c parsed: a preface followed by bytes that are no HTTP/2 reaches the pod untouched',
  async (t) => {
    const pod = await echoPod(t);
    const l4Only = authorizationPolicy('shop', 'shop-clients', {
      selector: { matchLabels: { app: 'server' } },
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }] }],
    });
    const ib = await inbound(t, [l4Only], pod, FROM_CLIENT);
    const r = await rawExchange(ib.port, NOT_HTTP2);
    t.is(r.received, NOT_HTTP2);
    t.like(ib.results[0], { delivered: true });
  },
);

test.serial('for contrast, the same bytes to a workload with L7 rules are parsed as h2c and never reach the pod', async (t) => {
  let podGot = '';
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => (podGot += d.toString('latin1')));
    s.on('error', () => {});
  });
  const ib = await inbound(t, [ALLOW_ONLY_ALLOWED], await listenLoopback(t, server), FROM_CLIENT);
  const r = await rawExchange(ib.port, NOT_HTTP2);
  t.false(r.received.includes('this is no HTTP/2 frame'));
  t.false(podGot.includes('this is no HTTP/2 frame'));
  t.like(ib.results[0], { delivered: true });
});

test.serial(
  'when the pod closes its h2c session (GOAWAY), the next request on the same inbound connection goes over a new one',
  async (t) => {
    const seen: string[] = [];
    const podServer = http2.createServer();
    let sessions = 0;
    let closed = 0;
    podServer.on('session', (s) => {
      sessions++;
      s.once('close', () => closed++);
    });
    podServer.on('stream', (s, headers) => {
      seen.push(String(headers[':path']));
      s.respond({ ':status': 200 });
      s.end(`answer ${seen.length}`);
      s.session?.close(); // GOAWAY after this stream
    });
    const ib = await inbound(t, [denyMethod('deny-delete', 'DELETE')], await listenLoopback(t, podServer), FROM_CLIENT);
    const session = await h2cClient(t, ib.port, 'tcp');
    const first = await h2request(session, { ':method': 'GET', ':path': '/one' });
    // the pod's session is gone (its GOAWAY and FIN were sent before this)
    await eventually(() => closed === 1, 10_000, "the pod's session to close");
    const second = await h2request(session, { ':method': 'GET', ':path': '/two' });
    t.deepEqual([first.body, second.body], ['answer 1', 'answer 2']);
    t.deepEqual(seen, ['/one', '/two']);
    t.is(sessions, 2);
    t.is(ib.results.length, 1, 'one inbound connection');
  },
);
