// The agent's admin port (15020, as Istio's): Prometheus /metrics, readiness
// /healthz/ready, and debug views. Listens on an explicit IPv4 address.
import http from 'node:http';
import { logger } from '../../common/log.js';
import { registry } from '../telemetry/metrics.js';
import { connectionChannel, type ConnectionEvent } from '../telemetry/tap.js';

const log = logger('agent/admin');

export interface AdminState {
  /** why the agent is not ready yet, or undefined when ready */
  notReady(): string | undefined;
  debug(): Record<string, unknown>;
}

export function startAdminServer(host: string, port: number, state: AdminState): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    switch (url.pathname) {
      case '/metrics':
        registry.metrics().then(
          (body) => {
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(body);
          },
          (err: unknown) => {
            res.writeHead(500).end(String(err));
          },
        );
        return;
      case '/healthz/ready': {
        const why = state.notReady();
        res.writeHead(why ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(why ? `not ready: ${why}\n` : 'ready\n');
        return;
      }
      case '/debug/state':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(state.debug(), null, 2));
        return;
      case '/debug/tap':
        tap(req, res);
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err }, 'admin server error'));
      log.info({ address: `${host}:${port}` }, 'admin server listening');
      resolve(server);
    });
  });
}

/** Streams connection events as NDJSON until the client goes away (`nodemesh tap`). */
function tap(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.flushHeaders();
  const onEvent = (msg: unknown) => {
    res.write(JSON.stringify(msg as ConnectionEvent) + '\n');
  };
  connectionChannel.subscribe(onEvent);
  req.on('close', () => connectionChannel.unsubscribe(onEvent));
}
