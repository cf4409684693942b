// The HPACK decoder the HTTP/2 observer reads header blocks with (agent/transport/hpack-decoder.ts):
// RFC 7541's own examples, and what it refuses. What Node's encoder (nghttp2) writes, with
// Huffman-coded strings of every octet, a dynamic table that fills and evicts, CONTINUATION
// frames and a size update, is read in test/unit/inbound-observed-h2.test.ts.
import test from 'ava';
import http2 from 'node:http2';
import net from 'node:net';
import { HpackDecoder, HpackError } from '../../agent/transport/hpack-decoder.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('RFC 7541 C.4: requests with Huffman coding, the second indexing the first one’s entry', (t) => {
  const d = new HpackDecoder();
  const first = [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'];
  t.deepEqual(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), first);
  t.deepEqual(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [...first, 'cache-control', 'no-cache']);
});

test('RFC 7541 C.2: a literal without indexing and a never-indexed one leave the table as it was', (t) => {
  const d = new HpackDecoder();
  t.deepEqual(d.decode(hex('040c 2f73 616d 706c 652f 7061 7468')), [':path', '/sample/path']);
  t.deepEqual(d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), ['password', 'secret']);
  t.throws(() => d.decode(hex('be')), { instanceOf: HpackError }, 'nothing was added to the dynamic table');
});

test('a size update evicts; an entry larger than the table empties it', (t) => {
  const d = new HpackDecoder();
  d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')); // custom-key: custom-header (55 octets)
  t.deepEqual(d.decode(hex('be')), ['custom-key', 'custom-header']);
  t.throws(() => d.decode(hex('3f15 be')), { instanceOf: HpackError }, 'a table of 36 octets holds no 55-octet entry');
  const e = new HpackDecoder({ tableSize: 60 });
  e.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
  e.decode(hex('4003 6162 6303 6465 66')); // abc: def (38 octets): the first is evicted
  t.deepEqual(e.decode(hex('be')), ['abc', 'def']);
  t.throws(() => e.decode(hex('bf')));
});

test('a block that decodes to a header list over the limit is refused: one-octet references to a large entry cannot blow up what is kept', (t) => {
  const d = new HpackDecoder({ maxListSize: 1000 });
  const entry = Buffer.concat([hex('4003 6b65 797f 8506'), Buffer.alloc(900, 0x76)]); // key: 900 × 'v' (935 octets listed)
  t.is(d.decode(entry)[1]!.length, 900);
  t.throws(() => d.decode(hex('be be')), { instanceOf: HpackError, message: /header list over 1000 octets/ });
  t.throws(() => new HpackDecoder({ maxListSize: 1000 }).decode(Buffer.concat([entry, hex('be')])), { instanceOf: HpackError });
});

test('what a decoder must refuse is refused with HpackError', (t) => {
  const bad: [string, string][] = [
    ['80', 'index 0'],
    ['ff 00', 'index 127 past the tables'],
    ['0081 00', 'Huffman padding that is not EOS'],
    ['41 05 6162', 'a string past the end'],
    ['ff ff ff ff ff 0f', 'an integer too large'],
    ['82 20', 'a size update after a field'],
    ['3fe2 ff03', 'a size update over the limit (65,537 octets)'],
    ['00 84 ff ff ff ff 00', 'EOS inside a Huffman string'],
  ];
  for (const [bytes, what] of bad) t.throws(() => new HpackDecoder().decode(hex(bytes)), { instanceOf: HpackError }, what);
});

/** Every header block (HEADERS and its CONTINUATIONs) in the bytes a client sent after the preface, by stream. */
function headerBlocks(bytes: Buffer): { stream: number; block: Buffer }[] {
  const out: { stream: number; block: Buffer }[] = [];
  let at = 24;
  let open: { stream: number; parts: Buffer[] } | undefined;
  while (at + 9 <= bytes.length) {
    const len = bytes.readUIntBE(at, 3);
    const [type, flags] = [bytes[at + 3]!, bytes[at + 4]!];
    const stream = bytes.readUInt32BE(at + 5) & 0x7fffffff;
    let payload = bytes.subarray(at + 9, at + 9 + len);
    at += 9 + len;
    if (type === 1) {
      if (flags & 0x8) payload = payload.subarray(1, payload.length - payload[0]!);
      if (flags & 0x20) payload = payload.subarray(5);
      open = { stream, parts: [payload] };
    } else if (type === 9) open!.parts.push(payload);
    else continue;
    if (flags & 0x4) {
      out.push({ stream: open!.stream, block: Buffer.concat(open!.parts) });
      open = undefined;
    }
  }
  return out;
}

test("what Node's encoder (nghttp2) writes is read back field for field: every octet Huffman-coded, a table that evicts, a size update, CONTINUATION", async (t) => {
  const octets = Array.from({ length: 256 }, (_v, c) => c).filter((c) => c === 9 || (c >= 0x20 && c !== 0x7f));
  for (const headerTableSize of [4096, 200]) {
    const received = new Map<number, string[]>();
    const server = http2.createServer({ settings: { headerTableSize } });
    server.on('stream', (s: http2.ServerHttp2Stream, _h: http2.IncomingHttpHeaders, _f: number, raw: string[]) => {
      received.set(s.id!, raw);
      s.respond({ ':status': 204 }, { endStream: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sent: Buffer[] = [];
    // the client's bytes recorded on their way (Node's HTTP/2 writes at the socket's handle)
    const forwarder = net.createServer((c) => {
      const up = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      c.on('data', (d: Buffer) => {
        sent.push(d);
        up.write(d);
      });
      up.pipe(c);
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
      c.on('error', () => {});
      up.on('error', () => {});
    });
    await new Promise<void>((r) => forwarder.listen(0, '127.0.0.1', r));
    const session = http2.connect(`http://127.0.0.1:${(forwarder.address() as net.AddressInfo).port}`);
    try {
      for (let i = 0; i < 30; i++) {
        const fields: Record<string, string> = { [`x-unique-${i}`]: `${i}`.repeat(50) };
        for (let k = 0; k < 8; k++) {
          const c = String.fromCharCode(octets[(i * 8 + k) % octets.length]!);
          fields[`x-octet-${k}`] = `${'a'.repeat(20)}${c}${'a'.repeat(20)}`;
        }
        if (i === 3) fields['x-large'] = 'e'.repeat(40_000);
        await new Promise<void>((resolve, reject) => {
          const r = session.request({ ':path': `/${i}`, ...fields });
          r.on('response', () => resolve());
          r.on('error', reject);
          r.end();
        });
      }
    } finally {
      session.destroy();
      forwarder.close();
      server.close();
    }
    const d = new HpackDecoder();
    const blocks = headerBlocks(Buffer.concat(sent));
    t.is(blocks.length, 30);
    for (const { stream, block } of blocks)
      t.deepEqual(d.decode(block), received.get(stream), `stream ${stream}, table ${headerTableSize}`);
  }
});
