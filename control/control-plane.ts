// The control plane: file source → store (validation, last good) → compiler → gRPC stream,
// plus the admin server. Bad input never stops it: every error is logged, counted in
// nodemesh_config_errors_total and shown in the status, and the last good state stays in
// force.
import { NodemeshError } from './api/errors.js';
import { logger } from './api/log.js';
import { TRUST_DOMAIN_DEFAULT, type Snapshot } from './api/snapshot.js';
import { startAdminServer, type AdminServer } from './admin-server.js';
import { compileSnapshot } from './compiler.js';
import { createControlMetrics, type ControlMetrics } from './control-metrics.js';
import { DiscoveryServer, type AgentStatus } from './discovery-server.js';
import { FileSource, type SourceState } from './source-files.js';
import { ResourceStore, type ConfigStatus, type StoreResult } from './store.js';

const log = logger('control/control-plane');

export interface ControlPlaneOptions {
  /** directory of Kubernetes-shaped YAML, read recursively and watched */
  configDir: string;
  /** gRPC discovery `host:port` (default 0.0.0.0:15012; port 0 picks a free one) */
  grpcAddress?: string;
  /** admin HTTP `host:port` (default 0.0.0.0:15014; port 0 picks a free one) */
  adminAddress?: string;
  /** SPIFFE trust domain (default cluster.local) */
  trustDomain?: string;
  /** quiet time after a file change before re-reading (default 100 ms) */
  debounceMs?: number;
  /** periodic full rescan, the safety net for missed change events (default 5000 ms) */
  rescanMs?: number;
  /** also export Node.js process metrics on /metrics (default true) */
  processMetrics?: boolean;
}

export interface ControlPlane {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly metrics: ControlMetrics;
  /** the snapshot in force (undefined until the config directory was read once) */
  snapshot(): Snapshot | undefined;
  status(): ConfigStatus;
  agents(): AgentStatus[];
  ready(): boolean;
  /** re-reads the directory now and resolves once it is applied, with the snapshot in force */
  rescan(): Promise<Snapshot | undefined>;
  /** listener for every new snapshot version; returns an unsubscribe function */
  onSnapshot(listener: (snapshot: Snapshot) => void): () => void;
  close(): Promise<void>;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const trustDomain = opts.trustDomain ?? TRUST_DOMAIN_DEFAULT;
  if (!TRUST_DOMAIN.test(trustDomain))
    throw new NodemeshError('NM_ERR_CONTROL', `invalid trust domain ${JSON.stringify(trustDomain)}: expected lowercase letters, digits, '.', '-' or '_'`);
  const metrics = createControlMetrics({ processMetrics: opts.processMetrics ?? true });
  const store = new ResourceStore();
  const server = new DiscoveryServer({ metrics });
  const listeners = new Set<(s: Snapshot) => void>();
  let current: Snapshot | undefined;
  let last: StoreResult = { resources: [], statuses: [], fileErrors: [], newErrors: [] };

  const apply = (state: SourceState) => {
    try {
      last = store.apply(state);
    } catch (err) {
      log.error({ err }, 'applying the configuration failed; the last good state stays in force');
      return;
    }
    for (const { error, kind } of last.newErrors) {
      metrics.configErrors.inc({ code: error.code, kind });
      log.warn({ code: error.code, ...error.location }, error.message);
    }
    // a config directory that could not be listed even once: nothing is known yet, and an
    // empty snapshot would tell every agent that the mesh is empty
    if (state.error && current === undefined) return;
    let next: Snapshot;
    try {
      next = compileSnapshot(last.resources, { trustDomain }, current);
    } catch (err) {
      log.error({ err }, 'compiling the snapshot failed; the previous snapshot stays in force');
      return;
    }
    if (next === current) return;
    current = next;
    metrics.snapshotVersion.set(next.version);
    log.info({ version: next.version, workloads: next.workloads.length, services: next.services.length }, 'new snapshot');
    try {
      server.publish(next);
    } catch (err) {
      log.error({ err, version: next.version }, 'pushing the snapshot to agents failed; they get it on their next connection');
    }
    for (const l of listeners) {
      try {
        l(next);
      } catch (err) {
        log.error({ err }, 'snapshot listener failed');
      }
    }
  };

  const source = new FileSource({
    dir: opts.configDir,
    ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
    ...(opts.rescanMs !== undefined ? { rescanMs: opts.rescanMs } : {}),
    onChange: apply,
  });

  const status = (): ConfigStatus => {
    const rejected = last.statuses.filter((s) => s.state === 'Rejected').length;
    return {
      configDir: source.dir,
      ready: current !== undefined,
      snapshotVersion: current?.version ?? 0,
      resources: last.statuses,
      fileErrors: last.fileErrors,
      summary: { accepted: last.statuses.length - rejected, rejected, fileErrors: last.fileErrors.length },
    };
  };

  let admin: AdminServer | undefined;
  let grpcPort: number;
  try {
    await source.start();
    grpcPort = await server.listen(opts.grpcAddress ?? '0.0.0.0:15012');
    admin = await startAdminServer(opts.adminAddress ?? '0.0.0.0:15014', {
      registry: metrics.registry,
      ready: () => current !== undefined,
      configStatus: status,
      snapshot: () => current,
      agents: () => server.agents(),
    });
  } catch (err) {
    source.close();
    await server.close(0);
    throw err;
  }
  log.info({ configDir: source.dir, grpcPort, adminPort: admin.port, trustDomain }, 'control plane started');

  const adminServer = admin;
  let closed = false;
  return {
    grpcPort,
    adminPort: adminServer.port,
    metrics,
    snapshot: () => current,
    status,
    agents: () => server.agents(),
    ready: () => current !== undefined,
    rescan: async () => {
      await source.scan();
      return current;
    },
    onSnapshot: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      source.close();
      await Promise.all([server.close(), adminServer.close()]);
      log.info({}, 'control plane stopped');
    },
  };
}
