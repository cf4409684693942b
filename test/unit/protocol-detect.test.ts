// Protocol detection (agent/transport/protocol-detect.ts): what a Service port declares, what the first
// bytes say, and sniffing on real sockets — the bytes read are put back for whoever handles
// the connection next, and a silent client (a server-first protocol) falls back to TCP.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import {
  classify,
  classifyRequestLine,
  declaredProtocol,
  MAX_REQUEST_LINE,
  sniff,
  sniffWithin,
} from '../../agent/transport/protocol-detect.js';
import { holds } from '../helpers/property-holds.js';
import { socketPair } from '../helpers/socket-pair.js';
import { eventually } from '../helpers/eventually.js';
import { idleFor } from '../helpers/idle.js';

test("declared protocol: appProtocol first, then Istio's port-name prefix, else unknown (sniff)", (t) => {
  const d = (name: string, appProtocol = '') => declaredProtocol({ name, appProtocol });
  t.is(d('http'), 'http');
  t.is(d('http-web'), 'http');
  t.is(d('http2-api'), 'http2');
  t.is(d('grpc'), 'http2');
  t.is(d('grpc-echo'), 'http2');
  t.is(d('tcp-db'), 'tcp');
  t.is(d('mysql'), 'tcp');
  t.is(d('https'), 'tcp', 'TLS is opaque to the proxy');
  t.is(d('web'), 'unknown');
  t.is(d(''), 'unknown');
  t.is(d('tcp', 'http'), 'http', 'appProtocol wins over the name');
  t.is(d('web', 'kubernetes.io/h2c'), 'http2');
  t.is(d('http', 'tcp'), 'tcp');
  t.is(d('x', 'something-else'), 'unknown');
});

test('the first bytes: an HTTP/1.x request line, the HTTP/2 preface, or anything else', (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  t.is(classify(b('GET / HTTP/1.1\r\n')), 'http1');
  t.is(classify(b('DELETE /x HTTP/1.1\r\n')), 'http1');
  t.is(classify(b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'http2');
  t.is(classify(b('PRI * HT')), undefined, 'a prefix of the preface needs more bytes');
  t.is(classify(b('GE')), undefined);
  t.is(classify(b('\x16\x03\x01\x02\x00')), 'tcp', 'a TLS ClientHello');
  t.is(classify(b('ping\n')), 'tcp');
  t.is(classify(b('A B')), 'tcp', 'a two-letter word is no method');
  holds(
    t,
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
      const buf = Buffer.from(bytes);
      const c = classify(buf);
      // whatever the bytes, a decision is stable once made: more bytes never change it
      if (c !== undefined) assert.equal(classify(Buffer.concat([buf, Buffer.from('more')])), c);
    }),
  );
});

function readAll(s: net.Socket, n: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.length >= n) resolve(got);
    });
    s.resume();
  });
}

test('sniffing HTTP/1.1 and HTTP/2 on a real socket puts every byte back, in order', async (t) => {
  for (const [first, rest, want] of [
    ['GE', 'T /path HTTP/1.1\r\nhost: x\r\n\r\n', 'http1'],
    ['PRI * HTTP/2.0\r\n', '\r\nSM\r\n\r\n\x00\x00\x00\x04', 'http2'],
  ] as const) {
    const p = await socketPair(t);
    const detected = sniff(p.server, 0);
    p.client.write(first);
    // the request arrives in two reads: the second part is sent once the first was read
    await eventually(() => p.server.bytesRead >= first.length, 10_000, 'the first part to be read');
    p.client.write(rest);
    t.is(await detected, want);
    t.is(await readAll(p.server, first.length + rest.length), first + rest);
  }
});

test('a silent client (server-first protocol) falls back to TCP after the timeout, nothing lost either way', async (t) => {
  const p = await socketPair(t);
  const started = performance.now();
  t.is(await sniff(p.server, 100), 'tcp');
  t.true(performance.now() - started >= 95);
  // the server speaks first, then the client answers: both directions still work
  p.server.write('220 hello\r\n');
  t.is(await readAll(p.client, 11), '220 hello\r\n');
  p.client.write('QUIT\r\n');
  t.is(await readAll(p.server, 6), 'QUIT\r\n');
});

test('a client that sends something else is TCP without waiting for the sniffing timeout, its bytes replayed', async (t) => {
  const p = await socketPair(t);
  p.client.write('\x16\x03\x01hello-tls');
  const started = performance.now();
  t.is(await sniff(p.server, 60_000), 'tcp');
  t.true(performance.now() - started < 30_000, 'decided by the bytes, not by the 60 s timeout');
  t.is(await readAll(p.server, 12), '\x16\x03\x01hello-tls');
});

test('the method token: three to sixteen upper-case letters, then a space', (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  for (const [head, want] of [
    ['PUT /', 'http1'],
    ['AAA /', 'http1'],
    ['ZZZ /', 'http1'],
    ['ABCDEFGHIJKLMNOP /', 'http1'],
    ['ABCDEFGHIJKLMNOPQ /', 'tcp'],
    ['ABCDEFGHIJKLMNOPQ', 'tcp'],
    ['ABCDEFGHIJKLMNOP', undefined],
    ['AB /', 'tcp'],
    [' GET /', 'tcp'],
    ['get /', 'tcp'],
    ['G@T /', 'tcp'],
    ['G[T /', 'tcp'],
    ['GETX', undefined],
    ['', undefined],
    ['PRI * HTTP/1.1\r\n', 'http1'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nmore frames', 'http2'],
  ] as const) {
    t.is(classify(b(head)), want, JSON.stringify(head));
  }
});

test('the first line, inbound: an HTTP/1.x request line or the HTTP/2 preface, decided once the line is whole', (t) => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  for (const [head, want] of [
    ['GET /x HTTP/1.1\r\n', 'http1'],
    ['POST /x?y=1 HTTP/1.0\n', 'http1'],
    ['M-SEARCH * HTTP/1.1\r\nHOST: x\r\n', 'http1'],
    ['GET /x HTTP/2.0\r\n', 'tcp'],
    ['get /x HTTP/1.1\r\n', 'tcp'],
    ['GET /x HTTP/1.1 extra\r\n', 'tcp'],
    ['GET  HTTP/1.1\r\n', 'tcp'],
    ['PRI * HTTP/2.0\r\n', 'http2'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2'],
    ['SSH-2.0-OpenSSH\r\n', 'tcp'],
    ['GET /x HTTP/1.1', undefined],
    ['', undefined],
    // the request line must be the whole line, from its first byte
    [' GET /x HTTP/1.1\r\n', 'tcp'],
    ['\x16GET /x HTTP/1.1\r\n', 'tcp'],
    ['junk PRI * HTTP/2.0\r\n', 'tcp'],
    // an empty first line is a whole line, and no request
    ['\n', 'tcp'],
    ['\nGET /x HTTP/1.1\r\n', 'tcp'],
  ] as const) {
    t.is(classifyRequestLine(b(head)), want, JSON.stringify(head));
  }
  t.is(classifyRequestLine(Buffer.alloc(MAX_REQUEST_LINE - 1, 'A')), undefined, 'a long line is read on');
  t.is(classifyRequestLine(Buffer.alloc(MAX_REQUEST_LINE, 'A')), 'tcp', 'up to its bound');
  t.is(
    classifyRequestLine(Buffer.from(`GET /${'a'.repeat(MAX_REQUEST_LINE)} HTTP/1.1\r\n`)),
    'http1',
    'a complete line is judged whole, however long',
  );
});

test("declared protocol: names and appProtocols in any case; Kubernetes' and Istio's names", (t) => {
  const d = (name: string | undefined, appProtocol?: string) =>
    declaredProtocol({ name, appProtocol } as { name: string; appProtocol: string });
  t.is(d('HTTP-Web'), 'http');
  t.is(d('web', 'GRPC'), 'http2');
  t.is(d('x', 'kubernetes.io/ws'), 'http');
  t.is(d('x', 'grpc-web'), 'http');
  t.is(d('x', 'kubernetes.io/wss'), 'tcp');
  for (const p of ['tls', 'mongo', 'redis', 'tcp']) t.is(d(p), 'tcp', p);
  t.is(d(undefined, undefined), 'unknown');
  t.is(d('http', undefined), 'http');
});

test('sniffing a stream that ends or closes before its first byte: nothing; bytes that arrive in pieces are judged together', async (t) => {
  const empty = new PassThrough();
  const none = sniff(empty, 0);
  empty.end();
  t.is(await none, undefined);
  const gone = new PassThrough();
  const closed = sniff(gone, 0);
  gone.destroy();
  t.is(await closed, undefined);
  // a decision of its own (the inbound one): bytes that arrive in pieces are judged together
  const s = new PassThrough();
  const line = sniff(s, 0, classifyRequestLine);
  s.write('GET /x ');
  s.write('HTTP/1.1');
  s.write('\r\nhost: a\r\n');
  t.is(await line, 'http1');
  t.is(String(s.read()), 'GET /x HTTP/1.1\r\nhost: a\r\n', 'one buffer put back, in order');
});

/** What a reader after the sniffer sees: every byte once, in order, and how the stream ended. */
function drain(s: PassThrough): Promise<{ data: string; error?: Error }> {
  return new Promise((resolve) => {
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.once('error', (error) => resolve({ data, error }));
    s.once('end', () => resolve({ data }));
    s.resume(); // the sniffer leaves the stream paused for its next reader
  });
}

test('once it has decided, the sniffer lets go: no listener of its own left, its timer never fires later, the rest flows once and ends cleanly', async (t) => {
  const s = new PassThrough();
  const listeners = () => ({
    data: s.listenerCount('data'),
    end: s.listenerCount('end'),
    close: s.listenerCount('close'),
    ownPush: Object.hasOwn(s, 'push'),
  });
  const before = listeners();
  const decided = sniff(s, 50);
  s.write('GET /x HTTP/1.1\r\n');
  t.is(await decided, 'http1');
  t.deepEqual(listeners(), before, "its data, end and close listeners are removed, and the stream's own push is back");
  const read = drain(s);
  s.write('host: a\r\n');
  // past the sniffing timeout: a timer left running would pause the stream and put the head back again
  await idleFor(150, 'the sniffing timeout (50 ms) passes after the decision');
  s.write('\r\n');
  s.end();
  const r = await read;
  t.is(r.error, undefined, 'the stream ended without an error');
  t.is(r.data, 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n', 'every byte once, in order');
});

test('sniffWithin: a client silent past the deadline is "timeout" (what it did send is put back); one that speaks in time is judged', async (t) => {
  const silent = new PassThrough();
  silent.write('GET /x'); // a request line that never completes
  const started = performance.now();
  t.is(await sniffWithin(silent, 50, classifyRequestLine), 'timeout');
  t.true(performance.now() - started >= 45, 'not before the deadline');
  t.is(String(silent.read()), 'GET /x', 'the bytes read are put back');
  const speaks = new PassThrough();
  const judged = sniffWithin(speaks, 60_000, classifyRequestLine);
  speaks.write('GET /x HTTP/1.1\r\n');
  t.is(await judged, 'http1');
});

test('a stream (or a real socket) that ends after bytes that did not decide is TCP, the bytes put back before its end; one that ends without closing is seen too', async (t) => {
  const s = new PassThrough();
  const p = sniff(s, 0);
  s.write('GE');
  s.end();
  t.is(await p, 'tcp');
  t.is(String(s.read()), 'GE');
  // the same on a real socket: a client that says QUIT and half-closes (`printf QUIT | nc -N`)
  const pair = await socketPair(t);
  const quit = sniff(pair.server, 0);
  pair.client.end('QUIT');
  t.is(await quit, 'tcp');
  const ended = new Promise<void>((r) => pair.server.once('end', r));
  t.is(await readAll(pair.server, 4), 'QUIT', 'the bytes are put back before the end');
  await ended;
  // 'end' without 'close': a half-open socket's FIN, here a stream that is not destroyed at its end
  const half = new PassThrough({ autoDestroy: false });
  const none = sniff(half, 0);
  half.end();
  const bound = idleFor(10_000, 'a failure bound, not the claim').then(() => 'still waiting after 10 s' as const);
  t.is(await Promise.race([none, bound]), undefined, "the sniffer answered on 'end' alone");
  t.false(half.destroyed, 'the stream was only ended, never closed');
});

test("a stream reset after bytes that did not decide is TCP (what it sent was not nothing); a push of the stream's own is given back to it", async (t) => {
  const reset = new PassThrough();
  const p = sniff(reset, 0);
  reset.write('GE');
  await eventually(() => reset.readableLength === 0, 10_000, 'the bytes to be read');
  reset.destroy();
  t.is(await p, 'tcp');
  // a stream whose push is already wrapped by its owner keeps that wrapper once the sniffer is done
  const wrapped = new PassThrough();
  const pushed: unknown[] = [];
  const ownPush = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    pushed.push(chunk);
    return PassThrough.prototype.push.call(wrapped, chunk, encoding);
  };
  wrapped.push = ownPush;
  const q = sniff(wrapped, 0);
  wrapped.write('GET / HTTP/1.1\r\n');
  t.is(await q, 'http1');
  t.is(wrapped.push, ownPush, "the owner's push is back");
  t.true(pushed.length > 0, 'and it saw the bytes while the sniffer read');
});
