// Which protocol a connection speaks: HTTP/1.x, HTTP/2 (incl. gRPC) or opaque TCP, read
// once here for both ends of the proxy.
//
// Outbound (the source's node proxy), Istio's order: the Service port's `appProtocol`, then
// the port name's prefix ("<protocol>[-<suffix>]"), else automatic detection by sniffing
// the first bytes. Declared HTTP ports still look at the first bytes to tell HTTP/1.1 from
// HTTP/2 prior knowledge (the client speaks first in both, so this never waits on a silent
// client); declared TCP ports never wait (server-first protocols such as MySQL stay
// unharmed); an undeclared port waits at most `timeoutMs` for the client's first bytes and
// falls back to TCP, with whatever was read replayed. The method token decides (`classify`).
//
// Inbound (a workload whose policies test HTTP attributes): the stream is authorised per
// request only when its whole first line is an HTTP/1.x request line or the HTTP/2 preface
// (`classifyRequestLine`); anything else is authorised as TCP, and so is a stream whose first
// line did not come within the request head's timeout (`sniffWithin`; transport/timeouts.ts):
// a server-first protocol to such a workload waits that long for its client's first bytes,
// then is a byte pipe under TCP's rules (Istio's protocol sniffing did the same past its
// protocolDetectionTimeout).
import type { Duplex } from 'node:stream';
// what a Service port declares is the contract's rule (the analyzer reads it too)
export { declaredProtocol, type Declared } from '../../control/api/port-protocol.js';

export type Protocol = 'http1' | 'http2' | 'tcp';

/** Istio's protocol sniffing timeout of old (now off by default there): short, as it delays server-first protocols. */
export const SNIFF_TIMEOUT_MS = 100;

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The first line of the HTTP/2 connection preface (RFC 9113 §3.4): h2c with prior knowledge. */
const HTTP2_PREFACE_LINE = 'PRI * HTTP/2.0\r\n';
/** The longest first line read to tell an HTTP/1.x request line from anything else. */
export const MAX_REQUEST_LINE = 8 * 1024;
const REQUEST_LINE = /^[A-Z][A-Z0-9_-]* \S+ HTTP\/1\.[01]\r?\n/;

/**
 * Classifies the first bytes: 'http2' for (a prefix of) the HTTP/2 connection preface,
 * 'http1' for an HTTP/1.x request line start (`TOKEN SP`), 'tcp' for anything else, and
 * undefined when more bytes are needed to tell.
 */
export function classify(head: Buffer): Protocol | undefined {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return head.length >= HTTP2_PREFACE.length ? 'http2' : undefined;
  // request line: a method token of upper-case letters (RFC 9110 methods in practice), then SP
  for (let i = 0; i < head.length; i++) {
    const c = head[i]!;
    if (c === 0x20) return i >= 3 ? 'http1' : 'tcp';
    if (c < 0x41 || c > 0x5a || i >= 16) return 'tcp';
  }
  return undefined;
}

/**
 * Classifies a whole first line: 'http2' for the first line of the HTTP/2 preface, 'http1'
 * for an HTTP/1.x request line (`METHOD SP target SP HTTP/1.x`), 'tcp' for anything else,
 * and undefined until the line is complete (or MAX_REQUEST_LINE bytes long).
 */
export function classifyRequestLine(head: Buffer): Protocol | undefined {
  const end = head.indexOf(10);
  if (end < 0 && head.length < MAX_REQUEST_LINE) return undefined;
  const line = head.toString('latin1', 0, end < 0 ? head.length : end + 1);
  if (line.startsWith(HTTP2_PREFACE_LINE)) return 'http2';
  return REQUEST_LINE.test(line) ? 'http1' : 'tcp';
}

/**
 * Reads the stream's first bytes until `decide` tells the protocol; the bytes are put back
 * (`unshift`) and the stream left paused, so whoever handles it next reads them first.
 * `timeoutMs` 0 waits for as long as the client takes; after it, the protocol is 'tcp'.
 * Resolves undefined when the stream ends before its first byte, 'tcp' when it ends after
 * some that did not decide.
 */
export function sniff(
  stream: Duplex,
  timeoutMs: number,
  decide: (head: Buffer) => Protocol | undefined = classify,
): Promise<Protocol | undefined> {
  return read(stream, timeoutMs, decide, 'tcp') as Promise<Protocol | undefined>;
}

/**
 * As sniff, where the client must speak first (a declared HTTP port, a stream authorised
 * per request): resolves 'timeout' when `deadlineMs` passed before the bytes decided (the
 * bytes read are put back all the same).
 */
export function sniffWithin(
  stream: Duplex,
  deadlineMs: number,
  decide: (head: Buffer) => Protocol | undefined = classify,
): Promise<Protocol | 'timeout' | undefined> {
  return read(stream, deadlineMs, decide, 'timeout');
}

function read(
  stream: Duplex,
  timeoutMs: number,
  decide: (head: Buffer) => Protocol | undefined,
  onTimeout: 'tcp' | 'timeout',
): Promise<Protocol | 'timeout' | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    // A client may send a few bytes that do not decide and then half-close (`printf QUIT |
    // nc -N`). A stream takes nothing back once it has emitted 'end', and in flowing mode
    // 'end' follows the last 'data' at once; so the stream's end of input (its push(null)) is
    // seen here first, while the bytes can still be put back before it.
    const ownPush = Object.prototype.hasOwnProperty.call(stream, 'push');
    const push = stream.push;
    stream.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (chunk === null && chunks.length > 0) finish('tcp');
      return push.call(stream, chunk, encoding);
    };
    const finish = (p: Protocol | 'timeout' | undefined) => {
      if (timer) clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      if (ownPush) stream.push = push;
      else delete (stream as { push?: unknown }).push;
      stream.pause();
      // after 'end' (or a reset) nothing can be put back; the end of input is caught above
      if (chunks.length > 0 && !stream.readableEnded && !stream.destroyed) stream.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      resolve(p);
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      const p = decide(chunks.length === 1 ? d : Buffer.concat(chunks));
      if (p) finish(p);
    };
    const onEnd = () => finish(chunks.length > 0 ? 'tcp' : undefined);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    if (timeoutMs > 0) {
      timer = setTimeout(() => finish(onTimeout), timeoutMs);
      timer.unref();
    }
  });
}
