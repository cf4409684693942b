// What every HBONE listener shares — the node proxy's 15008 (server.ts) and the east-west
// gateway's (gateway.ts): TLS 1.3 with ALPN h2 only and a client certificate verified against
// the trust bundle, HBONE's HTTP/2 windows and stream bound, every accepted socket tracked
// (so a hard close can end those still in the handshake), refused handshakes counted, and
// listening on a descriptor taken over from a predecessor or on host:port.
import http2, { type Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { proxyErrors } from '../telemetry/metrics.js';
import { ResponseFlag } from '../transport/response-flags.js';
import { HBONE_ALPN, HBONE_MAX_FRAME, HBONE_MAX_STREAMS, HBONE_PORT, HBONE_STREAM_WINDOW, HBONE_TLS_MIN_VERSION } from './protocol.js';

export interface HboneListener {
  server: Http2SecureServer;
  /** every accepted TCP connection until it closes, also those still in (or failed at) the handshake */
  sockets: Set<Socket>;
}

export function createHboneListener(opts: {
  /** the certificate to present for a handshake (by SNI) */
  SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  maxConcurrentStreams?: number;
  log: Logger;
}): HboneListener {
  const server = http2.createSecureServer({
    allowHTTP1: false,
    ALPNProtocols: [HBONE_ALPN],
    minVersion: HBONE_TLS_MIN_VERSION,
    requestCert: true,
    rejectUnauthorized: true,
    SNICallback: opts.SNICallback,
    settings: {
      enablePush: false,
      maxConcurrentStreams: opts.maxConcurrentStreams ?? HBONE_MAX_STREAMS,
      initialWindowSize: HBONE_STREAM_WINDOW,
      maxFrameSize: HBONE_MAX_FRAME,
    },
    unknownProtocolTimeout: 1_000,
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('unknownProtocol', (socket) => socket.destroy());
  server.on('tlsClientError', (err, socket) => {
    proxyErrors.inc({ reason: ResponseFlag.TlsFailure });
    opts.log.debug({ err: err.message, peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'HBONE TLS handshake refused');
  });
  return { server, sockets };
}

/** `fd`: a listening socket the agent made or took over from its predecessor (agent/lifecycle/). */
export function listenHbone(server: Http2SecureServer, log: Logger, fd: number | undefined, host: string, port: number = HBONE_PORT): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(fd !== undefined ? { fd, backlog: 4096 } : { host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err }, 'HBONE listener error'));
      resolve();
    });
  });
}
