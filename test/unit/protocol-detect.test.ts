// Protocol detection (agent/transport/protocol-detect.ts): what a Service port declares, what the first
// bytes say, and sniffing on real sockets — the bytes read are put back for whoever handles
// the connection next, and a silent client (a server-first protocol) falls back to TCP.
import test from 'ava';
import fc from 'fast-check';
import net from 'node:net';
import { classify, declaredProtocol, sniff } from '../../agent/transport/protocol-detect.js';
import { socketPair } from '../helpers/socket-pair.js';
import { eventually } from '../helpers/eventually.js';

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
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
      const buf = Buffer.from(bytes);
      const c = classify(buf);
      // whatever the bytes, a decision is stable once made: more bytes never change it
      if (c !== undefined) t.is(classify(Buffer.concat([buf, Buffer.from('more')])), c);
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

test('a client that sends something else is TCP at once, its bytes replayed', async (t) => {
  const p = await socketPair(t);
  p.client.write('\x16\x03\x01hello-tls');
  t.is(await sniff(p.server, 5000), 'tcp');
  t.is(await readAll(p.server, 12), '\x16\x03\x01hello-tls');
});
