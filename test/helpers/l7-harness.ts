// A node proxy's L7 engine on loopback, without the kernel: backends are real HTTP servers on
// 127.0.0.1, the connector dials them with plain TCP, and a front listener hands every
// accepted connection to the engine as the outbound proxy does after capture (the ClusterIP
// is just a name here). Tests of routing, retries, timeouts, ejection and limits use it.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../common/clock.js';
import type { RoutingConfig } from '../../control/api/snapshot-routing.js';
import type { Service, Snapshot, Workload } from '../../control/api/snapshot.js';
import { ProxyState } from '../../agent/state/proxy-state.js';
import { L7Servers } from '../../agent/l7/servers.js';
import { sniff } from '../../agent/transport/protocol-detect.js';
import { UpstreamError, type UpstreamConnector, type UpstreamRequest } from '../../agent/transport/connector.js';
import { ResponseFlag } from '../../agent/transport/response-flags.js';

export const VIP = '10.96.0.10';

/** Plain TCP to the chosen endpoint; counts dials. */
export class LoopbackConnector implements UpstreamConnector {
  dials = 0;
  connect(req: UpstreamRequest): Promise<Duplex> {
    this.dials++;
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: req.ip, port: req.port });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, err.message, { cause: err })));
    });
  }
}

/**
 * HBONE's shape without its TLS: every connection is an HTTP/2 CONNECT stream on one shared
 * session to a loopback tunnel server, which connects to the endpoint and pipes. The L7
 * engine's pools then run HTTP/1.1 and HTTP/2 over Http2Stream Duplexes, as over HBONE.
 */
export class TunnelConnector implements UpstreamConnector {
  private server: http2.Http2Server | undefined;
  private session: http2.ClientHttp2Session | undefined;
  private readonly serverSessions = new Set<http2.ServerHttp2Session>();
  streams = 0;

  async start(): Promise<this> {
    const server = http2.createServer();
    server.on('session', (s) => {
      this.serverSessions.add(s);
      s.on('close', () => this.serverSessions.delete(s));
    });
    server.on('stream', (s, h) => {
      const [host, port] = String(h[':authority']).split(':');
      const c = net.connect(Number(port), host!, () => {
        s.respond({ ':status': 200 });
        s.pipe(c);
        c.pipe(s);
      });
      c.on('error', () => s.close(http2.constants.NGHTTP2_CONNECT_ERROR));
      s.on('error', () => c.destroy());
      s.on('close', () => c.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    this.session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    // a reset of the tunnels' connection fails their streams, which the engine reports (UC/UF);
    // the session's own 'error' is that reset once more, not a second failure
    this.session.on('error', () => {});
    return this;
  }

  connect(req: UpstreamRequest): Promise<Duplex> {
    this.streams++;
    return new Promise((resolve, reject) => {
      const s = this.session!.request({ ':method': 'CONNECT', ':authority': `${req.ip}:${req.port}` });
      s.once('response', (h) => (h[':status'] === 200 ? resolve(s) : reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, `CONNECT ${h[':status']}`))));
      s.once('error', (err) => reject(new UpstreamError(ResponseFlag.UpstreamConnectionFailure, err.message)));
    });
  }

  /** Tears the tunnels down at once (a test's end). */
  close(): void {
    this.session?.destroy();
    for (const s of this.serverSessions) s.destroy();
    this.server?.close();
  }
}

export interface BackendSpec {
  name: string;
  labels?: Record<string, string>;
  handler: http.RequestListener;
  /** serve h2c (HTTP/2 prior knowledge) instead of HTTP/1.1 */
  h2?: boolean;
}

export interface Backend {
  name: string;
  port: number;
  server: net.Server;
  /** requests seen */
  count: number;
}

export async function startBackend(spec: BackendSpec): Promise<Backend> {
  const b: Backend = { name: spec.name, port: 0, server: undefined as unknown as net.Server, count: 0 };
  const handler: http.RequestListener = (req, res) => {
    b.count++;
    spec.handler(req, res);
  };
  const server = spec.h2 ? http2.createServer(handler as never) : http.createServer(handler);
  b.server = server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  return b;
}

/** The whole request body as text, for a backend's handler (never settles for a request cut short). */
export function bodyOf(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => resolve(body));
  });
}

export function workload(name: string, labels: Record<string, string> = {}, ip = '127.0.0.1'): Workload {
  return { uid: `shop/${name}`, name, namespace: 'shop', node: 'n', ip, serviceAccount: name, labels: { app: name, ...labels }, meshed: true, spiffeId: `spiffe://cluster.local/ns/shop/sa/${name}`, failOpen: false, workloadName: '' };
}

export interface SnapshotOptions {
  portName?: string;
  appProtocol?: string;
  /** extra labels per backend name (subsets select on them) */
  labels?: Record<string, Record<string, string>>;
  /** more Services in namespace shop, e.g. a mirror target: `<name>.shop.svc.cluster.local` */
  services?: { name: string; backends: Backend[] }[];
  /** calling workloads by loopback address (default: `client` at 127.0.0.1) */
  clients?: { name: string; ip: string; namespace?: string }[];
  /** the engine's clock (harness() only) */
  clock?: Clock;
}

function service(name: string, clusterIp: string, backends: Backend[], portName: string, appProtocol: string): Service {
  return {
    name,
    namespace: 'shop',
    hostname: `${name}.shop.svc.cluster.local`,
    clusterIp,
    ports: [
      {
        name: portName,
        port: 80,
        targetPort: 0,
        protocol: 'TCP',
        appProtocol,
        endpoints: backends.map((b) => ({ ip: '127.0.0.1', port: b.port, workload: `shop/${b.name}`, node: 'n' })),
      },
    ],
  };
}

export function snapshot(backends: Backend[], routing: RoutingConfig, opts: SnapshotOptions = {}): Snapshot {
  const services = [service('web', VIP, backends, opts.portName ?? 'http', opts.appProtocol ?? '')];
  (opts.services ?? []).forEach((s, i) => services.push(service(s.name, `10.96.0.${11 + i}`, s.backends, opts.portName ?? 'http', opts.appProtocol ?? '')));
  const all = [...backends, ...(opts.services ?? []).flatMap((s) => s.backends)];
  const workloads = all.map((b) => workload(b.name, opts.labels?.[b.name] ?? {}, '127.0.0.2'));
  for (const c of opts.clients ?? [{ name: 'client', ip: '127.0.0.1' }]) {
    const w = workload(c.name, {}, c.ip);
    if (c.namespace) {
      w.namespace = c.namespace;
      w.uid = `${c.namespace}/${c.name}`;
    }
    workloads.push(w);
  }
  return { version: 1, generatedAt: '', workloads, services, routing, security: {}, trustBundle: [] } as unknown as Snapshot;
}

/** The engine behind a loopback listener; `url` reaches the "Service". */
export class Harness {
  state: ProxyState;
  readonly l7: L7Servers;
  readonly connector: UpstreamConnector;
  private front!: net.Server;
  port = 0;

  /** `clock`: the engine's (outlier sweeps, retry budgets, latencies); a FakeClock lets a test move it */
  constructor(snap: Snapshot, protocol: 'http1' | 'http2' | 'sniff' = 'http1', connector: UpstreamConnector = new LoopbackConnector(), clock?: Clock) {
    this.state = new ProxyState(snap);
    this.connector = connector;
    this.l7 = new L7Servers({ connector, state: () => this.state, ...(clock ? { clock } : {}) });
    this.front = net.createServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      const target = this.state.serviceByVip(VIP, 80)!;
      const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      const source = this.state.workloadByIp(address);
      const conn = { source, sourceKey: source?.uid ?? address, sourceAddress: address, sourcePort: socket.remotePort ?? 0, target };
      if (protocol !== 'sniff') return this.l7.serve(socket, conn, protocol);
      void sniff(socket, 100).then((p) => (p === 'tcp' || p === undefined ? socket.destroy() : this.l7.serve(socket, conn, p)));
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.front.listen(0, '127.0.0.1', r));
    this.port = (this.front.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A new snapshot for new requests. */
  update(snap: Snapshot): void {
    this.state = new ProxyState(snap);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.front.close(() => r()));
    await this.l7.close();
  }
}

/**
 * A listening Harness for one test with a keep-alive client agent, both torn down with the
 * test, and the backends (those of `opts.services` too) closed.
 */
export async function harness(
  t: { teardown(fn: () => unknown): void },
  backends: Backend[],
  routing: RoutingConfig,
  opts: SnapshotOptions = {},
  agentOptions: http.AgentOptions = {},
): Promise<{ h: Harness; agent: http.Agent }> {
  const h = await new Harness(snapshot(backends, routing, opts), 'http1', new LoopbackConnector(), opts.clock).listen();
  const agent = new http.Agent({ keepAlive: true, ...agentOptions });
  t.teardown(async () => {
    agent.destroy();
    await h.close();
    for (const b of [...backends, ...(opts.services ?? []).flatMap((s) => s.backends)]) b.server.close();
  });
  return { h, agent };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** ms from sending to the end of the response */
  ms: number;
}

/** One request over `agent` (keep-alive); resolves status, headers, body, duration. */
export function request(url: string, agent: http.Agent, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string; localAddress?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(url, { agent, method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface HeldBackend extends Backend {
  /** requests waiting for release() */
  readonly waiting: number;
  /** answers the waiting requests, and every later one at once */
  release(): void;
}

/**
 * A backend that holds every request until the test releases it: what a slow backend does,
 * without a duration that a loaded machine could stretch past the test's other waits.
 */
export async function heldBackend(name: string, body = 'done'): Promise<HeldBackend> {
  const waiting: http.ServerResponse[] = [];
  let released = false;
  const b = await startBackend({
    name,
    handler: (_req, res) => {
      if (released) res.end(body);
      else waiting.push(res);
    },
  });
  return Object.defineProperties(b as HeldBackend, {
    waiting: { get: () => waiting.length },
    release: {
      value: () => {
        released = true;
        for (const res of waiting.splice(0)) res.end(body);
      },
    },
  });
}
