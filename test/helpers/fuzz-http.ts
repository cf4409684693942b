// Malformed HTTP as fast-check arbitraries, for the listener fuzz tests: HTTP/1.1 requests
// built from odd methods, targets, versions, line ends, headers and bodies (pipelined, cut
// into chunks), HTTP/2 frame sequences after a (sometimes broken) preface, and HBONE
// CONNECT requests with odd authorities and headers.
import fc from 'fast-check';
import { h2Frame, H2, H2_PREFACE, hpackLiterals } from './fuzz.js';

export const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/);
export const junk = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 40 });
const eol = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r', '');

const method = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'CONNECT', 'TRACE', 'PRI', 'get'), token, junk);
const target = fc.oneof(
  fc.constantFrom('/', '/a?b=c', '*', 'http://web/x', '//', '/%00', '/../../etc', '/a b', 'web:80', '/\u0000', '/%zz'),
  fc.webPath(),
  junk,
  fc.integer({ min: 8_000, max: 70_000 }).map((n) => `/${'a'.repeat(n)}`),
);
const version = fc.oneof(fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', 'HTTP/11', ''), junk);
const header = fc.oneof(
  fc.constantFrom<[string, string]>(
    ['host', 'web'],
    ['host', ''],
    ['content-length', '0'],
    ['content-length', '5'],
    ['content-length', '-1'],
    ['content-length', '99999999999999999999'],
    ['content-length', '1, 2'],
    ['transfer-encoding', 'chunked'],
    ['transfer-encoding', 'chunked, identity'],
    ['transfer-encoding', 'gzip'],
    ['connection', 'close'],
    ['connection', 'upgrade'],
    ['upgrade', 'websocket'],
    ['upgrade', 'h2c'],
    ['http2-settings', 'AAMAAABkAAQAAP__'],
    ['expect', '100-continue'],
    ['expect', 'nonsense'],
    ['x-forwarded-for', '1.2.3.4'],
    [':authority', 'web'],
  ),
  fc.tuple(token, junk),
  fc.tuple(junk, junk),
  fc.integer({ min: 1, max: 20_000 }).map((n): [string, string] => ['x-big', 'v'.repeat(n)]),
);
const body = fc.oneof(
  fc.constant(''),
  fc.constantFrom('hello', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', '5\r\nab', '0\r\n\r\n', 'ffffffffffffffff\r\n'),
  junk,
);

const http1Request = fc
  .record({ method, target, version, eol, headers: fc.array(header, { maxLength: 8 }), body })
  .map((r) => `${r.method} ${r.target} ${r.version}${r.eol}${r.headers.map(([k, v]) => `${k}: ${v}${r.eol}`).join('')}${r.eol}${r.body}`);

/** 1–3 requests (pipelined), or raw bytes, cut into 1–4 chunks. */
export const http1Case = fc
  .tuple(fc.oneof({ weight: 4, arbitrary: fc.array(http1Request, { minLength: 1, maxLength: 3 }).map((rs) => rs.join('')) }, { weight: 1, arbitrary: junk }), fc.array(fc.nat(), { maxLength: 3 }))
  .map(([text, cuts]) => split(Buffer.from(text, 'latin1'), cuts));

function split(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (b.length ? c % b.length : 0)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let last = 0;
  for (const c of at) {
    out.push(b.subarray(last, c));
    last = c;
  }
  out.push(b.subarray(last));
  return out.filter((p) => p.length > 0);
}

const pseudo = fc.constantFrom(':method', ':path', ':scheme', ':authority', ':status', ':protocol', ':bogus');
const h2Header = fc.oneof(
  fc.tuple(pseudo, fc.oneof(fc.constantFrom('GET', 'CONNECT', 'POST', '/', 'http', 'https', 'web', '127.0.0.2:80', '', 'websocket'), junk)),
  fc.tuple(fc.oneof(token.map((s) => s.toLowerCase()), token, junk), junk),
  fc.constantFrom<[string, string]>(['content-length', '3'], ['content-length', 'x'], ['te', 'trailers'], ['te', 'gzip'], ['connection', 'keep-alive'], ['host', 'web']),
);
const streamId = fc.oneof(fc.constantFrom(0, 1, 1, 3, 2, 0x7fffffff, 0xffffffff), fc.nat());
const h2FrameArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ flags: fc.constantFrom(0x4, 0x5, 0x1, 0x0, 0x8, 0x20, 0x25), id: streamId, hs: fc.array(h2Header, { maxLength: 6 }) }).map((f) => h2Frame(H2.HEADERS, f.flags, f.id, hpackLiterals(f.hs))) },
  { weight: 2, arbitrary: fc.record({ type: fc.integer({ min: 0, max: 12 }), flags: fc.integer({ min: 0, max: 255 }), id: streamId, payload: fc.uint8Array({ maxLength: 48 }) }).map((f) => h2Frame(f.type, f.flags, f.id, f.payload)) },
  { weight: 1, arbitrary: fc.record({ type: fc.integer({ min: 0, max: 9 }), id: streamId, len: fc.integer({ min: 0, max: 0xffffff }), payload: fc.uint8Array({ maxLength: 16 }) }).map((f) => h2Frame(f.type, 0, f.id, f.payload, f.len)) },
  { weight: 1, arbitrary: fc.constant(h2Frame(H2.SETTINGS, 0, 0, Buffer.alloc(0))) },
  { weight: 1, arbitrary: fc.record({ id: streamId, data: fc.uint8Array({ maxLength: 64 }), end: fc.boolean() }).map((f) => h2Frame(H2.DATA, f.end ? 1 : 0, f.id, f.data)) },
);
/** The preface (sometimes broken), a SETTINGS (usually), then frames. */
export const h2Case = fc
  .record({
    preface: fc.oneof({ weight: 6, arbitrary: fc.constant(H2_PREFACE) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)) }),
    settings: fc.boolean(),
    frames: fc.array(h2FrameArb, { maxLength: 8 }),
  })
  .map((c) => [c.preface, ...(c.settings ? [h2Frame(H2.SETTINGS, 0, 0, Buffer.alloc(0))] : []), ...c.frames]);

export const authority = fc.oneof(
  fc.constantFrom('127.0.0.2:1', '127.0.0.2', '127.0.0.2:0', '127.0.0.2:99999', '127.0.0.2:-1', '[::1]:80', '127.0.0.4:80', '127.0.0.5:80', '10.99.0.2:80', ':80', '', 'web:80', '127.0.0.2:80:80', '127.0.0.002:80', '0x7f000002:80', '127.0.0.2:8a0'),
  junk,
);
export const connectHeaders = fc
  .record({
    method: fc.oneof({ weight: 4, arbitrary: fc.constant('CONNECT') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'connect') }),
    authority,
    extra: fc.array(
      fc.oneof(
        fc.constantFrom<[string, string]>([':path', '/'], [':scheme', 'https'], [':protocol', 'websocket'], ['forwarded', 'for="1.2.3.4:5"'], ['forwarded', 'for=";;;"'], ['traceparent', '00-zz'], ['baggage', 'a=%%%']),
        fc.tuple(token.map((s) => s.toLowerCase()), junk.map((s) => s.replace(/[\r\n\0]/g, ''))),
      ),
      { maxLength: 4 },
    ),
    data: fc.uint8Array({ maxLength: 64 }),
  });

