// The agent's admin port (15020, as Istio's): Prometheus /metrics, readiness
// /healthz/ready, debug views (/debug/state, /debug/tap) and the node dashboard (/ and
// /dashboard: dashboard.html, which reads /metrics and /debug/state). Who may use which is
// admin-access.ts's: the node itself, trusted networks, or a bearer token.
//
// It listens on the given IPv4 address (the node's, where the kubelet probes and Prometheus
// scrape) and, when that is not already loopback or every address, on 127.0.0.1 too, where
// `kubectl port-forward` to the agent's pod arrives (ztunnel keeps its admin there).
//
// The port is reachable by every pod at the TCP level, so it must not be a way to hurt the
// node: peers that are neither the node nor trusted are held to a few connections at once
// (more are closed at accept), each refused request closes its connection, and every phase
// has a timeout (a slow client's headers, an idle keep-alive). A tap whose
// reader is slower than the node's connections loses events (counted in the stream) rather
// than growing the agent's memory.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { logger } from '../../common/log.js';
import { packagePath } from '../../common/paths.js';
import { adminRefused, registry } from '../telemetry/metrics.js';
import { badRequestFilter, connectionChannel, requestChannel, requestFilter, type ConnectionEvent, type RequestEvent } from '../telemetry/tap.js';
import { AdminAccess, scopeOf, type AdminAccessOptions } from './admin-access.js';

const log = logger('agent/admin');

/** Connections at once from peers that are neither the node nor trusted (token holders, or refused). */
const MAX_UNTRUSTED_CONNECTIONS = 32;
/** Taps at once: each serialises every connection event of the node. */
const MAX_TAPS = 16;
/** Bytes a tap may have unwritten before its events are dropped. */
const TAP_BUFFER_BYTES = 1 << 20;

export interface AdminState {
  /** why the agent is not ready yet, or undefined when ready */
  notReady(): string | undefined;
  /** may ask the proxy workers (agent/workers/), hence a promise */
  debug(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** the Prometheus text when it is not this process's registry alone (workers: every process's, summed) */
  metrics?(): Promise<{ body: string; contentType: string }>;
}

export interface AdminServer {
  /** the addresses listened on (host:port) */
  readonly addresses: string[];
  close(): void;
}

export async function startAdminServer(host: string, port: number, state: AdminState, accessOptions: AdminAccessOptions): Promise<AdminServer> {
  const access = new AdminAccess(accessOptions);
  await access.load();
  let untrusted = 0;
  let taps = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    access.decide(req, scopeOf(url.pathname)).then(
      (d) => {
        if (!d.ok) {
          adminRefused.inc({ reason: d.reason });
          const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain', connection: 'close' };
          if (d.status === 401) headers['www-authenticate'] = 'Bearer realm="nodemesh-agent"';
          res.writeHead(d.status, headers).end(`${d.message}\n`);
          return;
        }
        serve(url.pathname, req, res, url.searchParams);
      },
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  };
  const serve = (pathname: string, req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams) => {
    switch (pathname) {
      case '/metrics':
      case '/stats/prometheus': // Envoy's and Istio's path (the merged metrics of a sidecar)
        (state.metrics ? state.metrics() : registry.metrics().then((body) => ({ body, contentType: registry.contentType }))).then(
          ({ body, contentType }) => {
            res.writeHead(200, { 'content-type': contentType });
            res.end(body);
          },
          (err: unknown) => {
            res.writeHead(500).end(String(err));
          },
        );
        return;
      // the DaemonSet's liveness probe: the event loop answers. Not readiness: an agent
      // without a snapshot is not ready, and a restart would not bring one
      case '/healthz/live':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
        return;
      case '/healthz/ready': {
        const why = state.notReady();
        res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(why ? `not ready: ${why}\n` : 'ready\n');
        return;
      }
      case '/debug/state':
        Promise.resolve(state.debug()).then(
          (d) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(d, null, 2));
          },
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
        return;
      case '/':
      case '/dashboard': {
        let body: Buffer;
        try {
          body = dashboardPage();
        } catch (err) {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`dashboard: ${(err as Error).message}\n`);
          return;
        }
        // the page may talk to this origin only: nothing it shows comes from elsewhere
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-cache',
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
          'x-frame-options': 'DENY',
        });
        res.end(body);
        return;
      }
      case '/debug/tap':
        if (taps >= MAX_TAPS) {
          res.writeHead(503, { 'content-type': 'text/plain' }).end(`too many taps (${MAX_TAPS}) on this agent; stop one first\n`);
          return;
        }
        taps++;
        res.once('close', () => taps--);
        tap(req, res, query);
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /dashboard, /metrics (/stats/prometheus), /healthz/ready, /healthz/live, /debug/state, /debug/tap\n');
    }
  };
  const onConnection = (socket: net.Socket) => {
    if (access.trustedPeer(socket.remoteAddress ?? '')) return;
    // neither the node nor a trusted network: a token holder, or a pod to be told no (401)
    if (untrusted >= MAX_UNTRUSTED_CONNECTIONS) {
      adminRefused.inc({ reason: 'connections' });
      socket.destroy();
      return;
    }
    untrusted++;
    socket.once('close', () => untrusted--);
  };

  const listeners = [host];
  if (!isLoopbackOrAny(host)) listeners.push('127.0.0.1');
  const servers: http.Server[] = [];
  for (const h of listeners) {
    // the timeouts below are checked every connectionsCheckingInterval (30 s by default)
    const server = http.createServer({ connectionsCheckingInterval: 1_000 }, handler);
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.on('connection', onConnection);
    try {
      await listen(server, h, port);
      servers.push(server);
    } catch (err) {
      if (h === host) {
        for (const s of servers) s.close();
        throw err;
      }
      // the loopback listener is a convenience (port-forward); another agent in this netns has it
      log.warn({ err: (err as Error).message, address: `${h}:${port}` }, 'admin: no loopback listener');
    }
  }
  const addresses = servers.map((s) => {
    const a = s.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  });
  log.info({ addresses }, 'admin server listening');
  return {
    addresses,
    close() {
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
    },
  };
}

let page: Buffer | undefined;
/** The dashboard, read once from the package (agent/admin/dashboard.html: static, no build step). */
function dashboardPage(): Buffer {
  return (page ??= readFileSync(packagePath('agent', 'admin', 'dashboard.html')));
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err }, 'admin server error'));
      resolve();
    });
  });
}

function isLoopbackOrAny(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host.startsWith('127.') || host === '::1' || host === 'localhost';
}

/**
 * Streams connection events as NDJSON until the client goes away (`nodemesh tap`). Events
 * that find more than TAP_BUFFER_BYTES unwritten are dropped; the next one written is
 * preceded by `{"event":"dropped","count":N}`.
 */
function tap(req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams): void {
  const bad = q.has('requests') ? badRequestFilter(q) : undefined;
  if (bad) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`${bad}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let dropped = 0;
  const onEvent = (msg: unknown) => {
    if (res.writableLength > TAP_BUFFER_BYTES) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      res.write(`${JSON.stringify({ event: 'dropped', time: new Date().toISOString(), count: dropped })}\n`);
      dropped = 0;
    }
    res.write(JSON.stringify(msg as ConnectionEvent) + '\n');
  };
  // ?requests: one event per HTTP request (both reporters), filtered as `linkerd viz tap`
  // (tap.ts requestFilter)
  const channel = q.has('requests') ? requestChannel : connectionChannel;
  const keep = q.has('requests') ? requestFilter(q) : undefined;
  const listener = keep ? (msg: unknown) => keep(msg as RequestEvent) && onEvent(msg) : onEvent;
  channel.subscribe(listener);
  const stop = () => channel.unsubscribe(listener);
  req.once('close', stop);
  res.once('close', stop);
}
