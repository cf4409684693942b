// agent/transport/http2-request-options.ts: the shared options (Node's priority defaults set)
// make the same streams as Node's own defaults: no body, a body, a body with trailers.
import test from 'ava';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { h2RequestOptions } from '../../agent/transport/http2-request-options.js';

type Seen = { body: string; trailers: Record<string, unknown> };

async function withServer(fn: (client: http2.ClientHttp2Session) => Promise<void>): Promise<void> {
  const server = http2.createServer();
  server.on('stream', (st) => {
    let body = '';
    let trailers = {};
    st.on('trailers', (tr) => (trailers = { ...tr }));
    st.setEncoding('utf8');
    st.on('data', (c: string) => (body += c));
    st.on('end', () => {
      st.respond({ ':status': 200, 'content-type': 'application/json' });
      st.end(JSON.stringify({ body, trailers }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    await fn(client);
  } finally {
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function answer(st: http2.ClientHttp2Stream): Promise<Seen> {
  return new Promise((resolve, reject) => {
    let b = '';
    st.setEncoding('utf8');
    st.on('data', (c: string) => (b += c));
    st.on('end', () => resolve(JSON.parse(b) as Seen));
    st.on('error', reject);
  });
}

test('no body: the stream is ended with the headers', async (t) => {
  await withServer(async (client) => {
    const st = client.request({ ':path': '/', ':method': 'POST' }, h2RequestOptions(true));
    t.true(st.writableEnded);
    t.deepEqual(await answer(st), { body: '', trailers: {} });
  });
});

test('a body follows the headers; with trailers asked, they follow the body', async (t) => {
  await withServer(async (client) => {
    const plain = client.request({ ':path': '/', ':method': 'POST' }, h2RequestOptions(false));
    plain.end('hello');
    t.deepEqual(await answer(plain), { body: 'hello', trailers: {} });
    const withTrailers = client.request({ ':path': '/', ':method': 'POST' }, h2RequestOptions(false, true));
    withTrailers.on('wantTrailers', () => withTrailers.sendTrailers({ 'grpc-status': '0' }));
    withTrailers.end('bye');
    const seen = await answer(withTrailers);
    t.is(seen.body, 'bye');
    t.is(seen.trailers['grpc-status'], '0');
  });
});

test('the shared options are never written to by Node', async (t) => {
  const before = JSON.stringify([h2RequestOptions(true), h2RequestOptions(false), h2RequestOptions(false, true)]);
  await withServer(async (client) => {
    await answer(client.request({ ':path': '/' }, h2RequestOptions(true)));
  });
  t.is(JSON.stringify([h2RequestOptions(true), h2RequestOptions(false), h2RequestOptions(false, true)]), before);
});
