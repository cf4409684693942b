// The agent's end of the chained CNI plugin (cni/nodemesh-cni.c): a Unix socket on which
// the plugin, run by the container runtime at sandbox creation, asks to enroll a pod's
// network namespace before the pod's first instruction runs, and to release it on DEL.
// One JSON line each way (the protocol is written down at the top of the C file).
//
// Meshed or not is the control plane's decision (Workload.meshed), looked up by the pod's
// namespace/name. On a real cluster the pod is not in the snapshot yet when ADD runs (its
// IP is being assigned right now), so an unknown pod waits a bounded time for a snapshot
// that has it, then is answered by its namespace's default (Snapshot.namespaces) when the
// control plane sent one; a pod nobody can decide about is refused (fail closed): a pod
// that should have been meshed but started unmeshed would send its first connections in
// plaintext, which is exactly what the plugin exists to prevent. ARCHITECTURE.md, "Capture
// from a pod's first connection".
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { logger } from '../../common/log.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { cniRequests } from '../telemetry/metrics.js';
import type { Enrollment } from './enrollment.js';

const log = logger('agent/cni-server');

const MAX_REQUEST = 8192;
const READ_TIMEOUT_MS = 5_000;
/** below the plugin's default timeoutSeconds (20), so the plugin hears the refusal itself */
const DEFAULT_UNKNOWN_POD_WAIT_MS = 10_000;

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS';
export type CniStatus = 'enrolled' | 'not-meshed' | 'released' | 'ok' | 'refused';

export interface CniRequest {
  command: CniCommand;
  containerId: string;
  netns: string;
  namespace: string;
  pod: string;
}

export interface CniServerOptions {
  /** the plugin's agentSocket (the agent puts it in its state dir, a hostPath) */
  path: string;
  enrollment: Enrollment;
  /** the current snapshot, if any */
  snapshot: () => Snapshot | undefined;
  /** how long ADD waits for a snapshot that knows the pod (default 10 s) */
  unknownPodWaitMs?: number;
  /**
   * Run after a successful ADD, before it is answered: the pod's veth exists now (the
   * previous plugin made it), and the inbound capture attaches to it here, so no packet
   * reaches the pod before its capture does (a STRICT pod is never served plaintext).
   */
  afterAdd?: () => Promise<void>;
}

interface Decision {
  meshed: boolean;
  failOpen: boolean;
  ip: string;
  why: string;
}

export class CniServer {
  private readonly sockets = new Set<net.Socket>();
  private waiters = new Set<() => void>();
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly path: string,
    private readonly opts: CniServerOptions,
  ) {}

  static async listen(opts: CniServerOptions): Promise<CniServer> {
    const p = opts.path;
    fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
    // a socket an earlier agent left (a crash): nobody listens on it any more
    try {
      if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = net.createServer();
    const cni = new CniServer(server, p, opts);
    server.on('connection', (s) => cni.serve(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, () => {
        server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(p, 0o600); // the container runtime runs plugins as root
    log.info({ socket: p }, 'CNI socket listening');
    return cni;
  }

  /** ADDs waiting for a snapshot that knows their pod */
  get waiting(): number {
    return this.waiters.size;
  }

  /** A new snapshot arrived: ADDs waiting for their pod look again. */
  snapshotChanged(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const wake of w) wake();
  }

  /** `keepFile`: a successor agent listens on the same path now (a handoff). */
  async close({ keepFile = false } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.snapshotChanged();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (keepFile) return;
    try {
      fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (err) => log.debug({ err }, 'CNI connection error'));
    socket.setTimeout(READ_TIMEOUT_MS, () => socket.destroy());
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length <= MAX_REQUEST) return;
      socket.off('data', onData);
      socket.setTimeout(0); // an ADD may wait for the snapshot; the plugin has its own deadline
      if (nl < 0) return this.answer(socket, undefined, 'refused', `request over ${MAX_REQUEST} bytes`);
      const req = parseRequest(buf.slice(0, nl));
      if (typeof req === 'string') return this.answer(socket, undefined, 'refused', req);
      this.handle(req).then(
        ({ status, message }) => this.answer(socket, req, status, message),
        (err: unknown) => this.answer(socket, req, 'refused', (err as Error).message),
      );
    };
    socket.on('data', onData);
  }

  private answer(socket: net.Socket, req: CniRequest | undefined, status: CniStatus, message: string): void {
    cniRequests.inc({ command: req?.command ?? 'invalid', status });
    const fields = { command: req?.command, pod: req ? `${req.namespace}/${req.pod}` : undefined, netns: req?.netns, status, message };
    if (status === 'refused') log.warn(fields, 'CNI request refused');
    else log.info(fields, 'CNI request answered');
    if (!socket.destroyed) socket.end(`${JSON.stringify({ status, message })}\n`);
  }

  private async handle(req: CniRequest): Promise<{ status: CniStatus; message: string }> {
    const uid = `${req.namespace}/${req.pod}`;
    switch (req.command) {
      case 'STATUS':
        return { status: 'ok', message: '' };
      case 'DEL': {
        const had = await this.opts.enrollment.releaseSandbox(req.containerId);
        return { status: 'released', message: had ? 'released' : 'was not enrolled' };
      }
      case 'CHECK': {
        const d = this.decide(uid, req.namespace);
        if (!d?.meshed) return { status: 'ok', message: d?.why ?? 'not known' };
        const have = await this.opts.enrollment.lookup(req.netns);
        return have
          ? { status: 'ok', message: 'enrolled' }
          : { status: 'refused', message: `pod ${uid} is meshed but its netns ${req.netns} is not enrolled` };
      }
      case 'ADD': {
        const d = await this.decideWaiting(uid, req.namespace);
        if (!d) {
          const waited = this.opts.unknownPodWaitMs ?? DEFAULT_UNKNOWN_POD_WAIT_MS;
          return {
            status: 'refused',
            message: `pod ${uid} and its namespace are not in the control plane's snapshot after ${waited} ms, so whether it is meshed is unknown; is the control plane reachable from this node's agent?`,
          };
        }
        if (!d.meshed) {
          // remembered, so opting the pod in later enrolls this netns at once
          await this.opts.enrollment.recordSandbox(req.netns, req.containerId, uid);
          await this.opts.afterAdd?.();
          return { status: 'not-meshed', message: d.why };
        }
        await this.opts.enrollment.enrollSandbox(req.netns, req.containerId, { uid, ip: d.ip, failOpen: d.failOpen });
        await this.opts.afterAdd?.();
        return { status: 'enrolled', message: d.why };
      }
    }
  }

  /** The pod's own answer, else its namespace's, else undefined (not known yet). */
  private decide(uid: string, namespace: string): Decision | undefined {
    const s = this.opts.snapshot();
    if (!s) return undefined;
    const w = s.workloads.find((x) => x.uid === uid);
    if (w) return { meshed: w.meshed, failOpen: w.failOpen, ip: w.ip, why: `workload ${uid} is ${w.meshed ? 'meshed' : 'not meshed'}` };
    const ns = s.namespaces.find((n) => n.name === namespace);
    // a new pod is fail closed until the snapshot has it: whether a port of it is STRICT is not known yet
    if (ns) {
      const meshed = ns.pendingExceptions.includes(uid.slice(namespace.length + 1)) ? !ns.meshed : ns.meshed;
      return {
        meshed,
        failOpen: false,
        ip: '',
        why: `pod ${uid} has no IP in the snapshot yet; its own or its namespace's setting says ${meshed ? 'meshed' : 'not meshed'}`,
      };
    }
    return undefined;
  }

  private async decideWaiting(uid: string, namespace: string): Promise<Decision | undefined> {
    const deadline = Date.now() + (this.opts.unknownPodWaitMs ?? DEFAULT_UNKNOWN_POD_WAIT_MS);
    for (;;) {
      const d = this.decide(uid, namespace);
      if (d || this.closed) return d;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        timer.unref();
        const waiters = this.waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }
}

const COMMANDS = new Set<string>(['ADD', 'DEL', 'CHECK', 'STATUS']);

/** A request, or what is wrong with it. */
export function parseRequest(line: string): CniRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'request is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'request is not a JSON object';
  const o = v as Record<string, unknown>;
  if (typeof o.command !== 'string' || !COMMANDS.has(o.command))
    return `command ${JSON.stringify(o.command)} is not one of ADD, DEL, CHECK, STATUS`;
  const req: Record<string, string> = { command: o.command };
  for (const f of ['containerId', 'netns', 'namespace', 'pod'] as const) {
    const x = o[f] ?? '';
    if (typeof x !== 'string') return `field ${f} is not a string`;
    req[f] = x;
  }
  if (o.command === 'ADD' || o.command === 'CHECK') {
    for (const f of ['containerId', 'netns', 'namespace', 'pod']) if (!req[f]) return `field ${f} is empty`;
    if (!path.isAbsolute(req.netns!)) return `netns ${JSON.stringify(req.netns)} is not an absolute path`;
  }
  if (o.command === 'DEL' && !req.containerId) return 'field containerId is empty';
  return req as unknown as CniRequest;
}
