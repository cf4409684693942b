// Control-plane admin HTTP server (port 15014):
//   GET /metrics               Prometheus text of the control plane's registry
//   GET /healthz/ready         200 once the first snapshot is compiled, 503 before
//   GET /healthz/live          200 while the process answers (the Deployment's liveness
//                              probe: a control plane cut from the API server is not ready,
//                              and a restart would not help it)
//   GET /debug/config_status   JSON ConfigStatus: every document's status, file errors
//   GET /debug/snapshot        JSON of the current snapshot (404 before the first)
//   GET /debug/agents          JSON of the connected agents
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Snapshot } from '../api/snapshot.js';
import { logger } from '../../common/log.js';
import { splitHostPort } from '../../common/host-port.js';
import type { AgentStatus } from '../discovery-server.js';
import type { ConfigStatus } from '../config-store.js';

const log = logger('control/admin-server');

export interface AdminSources {
  registry: Registry;
  ready(): boolean;
  configStatus(): ConfigStatus;
  snapshot(): Snapshot | undefined;
  agents(): AgentStatus[];
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

/** `address`: `host:port`, `[v6]:port` or `:port` (every address). */
export async function startAdminServer(address: string, src: AdminSources): Promise<AdminServer> {
  const [bind, port] = splitHostPort(address);
  const host = bind || '0.0.0.0';
  const server = http.createServer((req, res) => {
    handle(req, res, src).catch((err: Error) => {
      log.error({ err, url: req.url }, 'admin request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${err.message}\n`);
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for admin HTTP on ${address}: ${err.message}`, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, src: AdminSources): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  switch (path) {
    case '/metrics': {
      const body = await src.registry.metrics();
      res.writeHead(200, { 'content-type': src.registry.contentType }).end(body);
      return;
    }
    case '/healthz/live':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
      return;
    case '/healthz/ready':
      if (src.ready()) res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      else res.writeHead(503, { 'content-type': 'text/plain' }).end('not ready: no snapshot compiled yet\n');
      return;
    case '/debug/config_status':
      json(res, 200, src.configStatus());
      return;
    case '/debug/snapshot': {
      const snap = src.snapshot();
      if (snap) json(res, 200, snap);
      else json(res, 404, { error: 'no snapshot compiled yet' });
      return;
    }
    case '/debug/agents':
      json(res, 200, src.agents());
      return;
    default:
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found; try /metrics, /healthz/ready, /healthz/live, /debug/config_status, /debug/snapshot, /debug/agents\n');
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}
