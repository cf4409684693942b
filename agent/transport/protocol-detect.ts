// Which protocol a captured connection speaks: HTTP/1.x, HTTP/2 (incl. gRPC) or opaque TCP.
// Istio's order: the Service port's `appProtocol`, then the port name's prefix
// ("<protocol>[-<suffix>]"), else automatic detection by sniffing the first bytes.
// Declared HTTP ports still look at the first bytes to tell HTTP/1.1 from HTTP/2 prior
// knowledge (the client speaks first in both, so this never waits on a silent client);
// declared TCP ports never wait (server-first protocols such as MySQL stay unharmed); an
// undeclared port waits at most `timeoutMs` for the client's first bytes and falls back to
// TCP, with whatever was read replayed.
import type { Socket } from 'node:net';
import type { ServicePort } from '../../control/api/snapshot.js';

export type Protocol = 'http1' | 'http2' | 'tcp';
export type Declared = 'http' | 'http2' | 'tcp' | 'unknown';

/** Istio's protocol sniffing timeout of old (now off by default there): short, as it delays server-first protocols. */
export const SNIFF_TIMEOUT_MS = 100;

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const APP_PROTOCOLS: Record<string, Declared> = {
  http: 'http',
  'kubernetes.io/ws': 'http',
  http2: 'http2',
  grpc: 'http2',
  'grpc-web': 'http',
  'kubernetes.io/h2c': 'http2',
  tcp: 'tcp',
  tls: 'tcp',
  https: 'tcp',
  'kubernetes.io/wss': 'tcp',
  mongo: 'tcp',
  redis: 'tcp',
  mysql: 'tcp',
};

/** What the Service port says about its protocol. */
export function declaredProtocol(port: Pick<ServicePort, 'name' | 'appProtocol'>): Declared {
  const app = (port.appProtocol ?? '').toLowerCase();
  if (app) return APP_PROTOCOLS[app] ?? 'unknown';
  // "Istio ... the port name in the form <protocol>[-<suffix>]"
  const name = (port.name ?? '').toLowerCase();
  const prefix = name.split('-', 1)[0]!;
  return APP_PROTOCOLS[prefix] ?? 'unknown';
}

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
 * Reads the connection's first bytes and decides; the bytes are put back (`unshift`) so
 * whoever handles the connection next reads them first. `timeoutMs` 0 waits for as long as
 * the client takes (declared HTTP ports).
 */
export function sniff(socket: Socket, timeoutMs: number): Promise<Protocol> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = (p: Protocol) => {
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (chunks.length > 0) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      resolve(p);
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      const p = classify(chunks.length === 1 ? d : Buffer.concat(chunks));
      if (p) finish(p);
    };
    const onEnd = () => finish('tcp');
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    if (timeoutMs > 0) {
      timer = setTimeout(() => finish('tcp'), timeoutMs);
      timer.unref();
    }
  });
}
