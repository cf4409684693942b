// The node agent: one per node. Takes its listening sockets over from the agent before it
// (or binds them), serves from the last good state that agent left, attaches (or adopts)
// the datapath, enrols the meshed pods of its node, runs the proxies and the admin server,
// and keeps the datapath's heartbeat. Stopping never removes the datapath: with no agent
// the node fails closed (fail-open namespaces aside); `nodemesh agent cleanup` uninstalls.
//
// Lifecycle (agent/lifecycle/; ARCHITECTURE.md, "Start-up order"): serve first — listeners
// (bound before this module was even loaded), the last good snapshot and certificates, the
// redirect datapath adopted, then the proxies accept, and a restart is ready — and only then,
// once the connections that queued meanwhile were served, load the control-plane client
// (gRPC and the protos are not among this module's static imports), the inbound programs,
// enrol and listen for the CNI plugin; a successor takes the listeners over and this agent
// drains.
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { logger } from '../common/log.js';
import { AGENT_PORTS as PORTS, PROXY_MARK } from '../common/ports.js';
import { splitHostPort } from '../common/host-port.js';
import type { SnapshotWatch } from '../control/api/discovery-client.js';
import type { CertificateSigner } from '../control/api/certificate-signer.js';
import type { ControlPlaneCredentials } from '../control/api/control-credentials.js';
import { readRootCertFile } from '../control/api/control-roots.js';
import { IdentityManager } from './identity/identity-manager.js';
import type { Snapshot } from '../control/api/snapshot.js';
import { startAdminServer } from './admin/admin-server.js';
import { DEFAULT_PIN_DIR, Datapath, cgroup2Mount, ownCgroup } from './datapath/redirect.js';
import { InboundDatapath, meshedPods } from './datapath/inbound.js';
import type { CniServer } from './datapath/cni-server.js';
import { Enrollment } from './datapath/enrollment.js';
import { setMeshedPods } from './telemetry/mesh-metrics.js';
import { workloadName } from './telemetry/workload-name.js';
import { applyTelemetry, closeTelemetry, configureTelemetry } from './telemetry/telemetry-config.js';
import {
  collectAgentProcessMetrics,
  controlPlaneConnected,
  datapathReconciles,
  registry,
  snapshotsRejected,
  snapshotVersion,
} from './telemetry/metrics.js';
import { passthroughGuard } from './proxy/passthrough-guard.js';
import { PodNetnsScanner } from './datapath/pod-netns.js';
import { ProxyState } from './state/proxy-state.js';
import { reauthorizeInbound } from './proxy/authorized-connections.js';
import type { ProxyTimeouts } from './transport/timeouts.js';
import { jsStreamSocketGuard } from './transport/http2-write-fix.js';
import { ProxyServing, type Serving, type ServingConfig } from './workers/serving.js';
import type { WorkerPool } from './workers/worker-pool.js';
import type { SourceLimitsOptions } from './transport/source-limits.js';
import { DEFAULT_DRAIN_MS, drain } from './lifecycle/drain.js';
import { closeDescriptor } from './datapath/socket-handoff.js';
import { untilEventLoopQuiet } from './lifecycle/first-traffic.js';
import { offerHandoff, type HandoffServer } from './lifecycle/handoff.js';
import { LastGoodWriter, readLastGood } from './lifecycle/last-good.js';
import { MemoryTrimmer } from './lifecycle/memory-trim.js';
import { mallocName, mallocTrim } from './datapath/socket-calls.js';
import { DEFAULT_STATE_DIR, listenerAddresses, prepareListeners, type PreparedListeners } from './lifecycle/prepare.js';

const log = logger('agent');

/** CPU this process used so far (user + system), for the start-up log: wall time on a loaded node says little */
const cpuMs = () => {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 1000);
};

/** How often the heartbeat goes into nm_liveness; DEFAULT_LIVENESS_TIMEOUT_MS is several of these. */
const HEARTBEAT_MS = 250;
/** the netns and link rescan beside the snapshot- and CNI-driven reconciles (ARCHITECTURE.md, issue 10) */
const RESCAN_SAFETY_NET_MS = 30_000;
/**
 * A fail-open pod bypasses the proxy this long after its last heartbeat (a crash or a hang;
 * a graceful stop says "down" at once). Long enough that a busy event loop on a loaded
 * node does not flap it, short against the restart it covers.
 */
export const DEFAULT_LIVENESS_TIMEOUT_MS = 2_000;

export interface AgentOptions {
  /** Kubernetes node name */
  node: string;
  /** control plane gRPC address host:port, or several replicas' IP host:port separated by commas */
  control: string;
  /** IPv4 address pods reach the node proxy on (the node's IP) */
  proxyIp: string;
  outboundPort?: number;
  /** admin address host:port (default proxyIp:15020) */
  admin?: string;
  /** who may use the admin port besides the node itself (admin/admin-access.ts) */
  adminAccess?: { trustedNetworks?: string[]; adminTokenFile?: string; metricsTokenFile?: string };
  /** cgroup v2 directory that is the parent of all pods (default: the cgroup2 root) */
  podsCgroup?: string;
  /** bpffs directory for pins (default /sys/fs/bpf/nodemesh/v2) */
  pinDir?: string;
  /** directory of the pods' network namespaces (default /run/netns) */
  netnsDir?: string;
  /** the chained CNI plugin's socket (default <stateDir>/cni.sock); false: none */
  cniSocket?: string | false;
  /** how long a CNI ADD waits for a snapshot that knows the pod (default 10 s) */
  cniUnknownPodWaitMs?: number;
  /** how often the netns directory is re-scanned for new pods (a safety net beside the CNI plugin) */
  rescanMs?: number;
  /**
   * TLS to the control plane and workload certificates from its CA: the root(s) to verify
   * the control plane with (PEM file) and this node's credential directory (cert.pem,
   * key.pem). Without it the control connection is plaintext and there are no identities.
   */
  /** how the agent proves its node: the lab's node credential, or (Kubernetes) its projected ServiceAccount token file */
  controlTls?: { rootCert: string; nodeCredential?: string; tokenFile?: string };
  /** when the trust bundle gains a root, certificates move under it within this (default 30 s) */
  rootChangeSpreadMs?: number;
  /** the proxy's timeouts and bound per source pod (defaults: transport/timeouts.ts, transport/source-limits.ts) */
  proxy?: { timeouts?: Partial<ProxyTimeouts>; limits?: Partial<SourceLimitsOptions> };
  /** this node's agent state: the handoff socket and the last good state (default /run/nodemesh/agent) */
  stateDir?: string;
  /** how long established connections may finish after a stop or a handoff (default 20 s) */
  drainMs?: number;
  /** fail-open pods bypass the proxy this long after its last heartbeat (default 2 s) */
  livenessTimeoutMs?: number;
  /**
   * proxy worker processes serving the listeners (agent/workers/); 1 (the default here; the
   * CLI defaults to the cores the agent's cgroup allows) serves in the agent's own process
   */
  workers?: number;
}

export interface RunningAgent {
  /** resolves once a successor took the listeners over; this agent drains then (call stop) */
  readonly handedOver: Promise<void>;
  /**
   * Stops accepting (fail-open pods bypass the proxy at once), lets open connections finish
   * for the drain period (or until `cut` resolves), closes what is left. The datapath stays.
   */
  stop(opts?: { cut?: Promise<unknown> }): Promise<void>;
}

export async function startAgent(opts: AgentOptions, prepared?: PreparedListeners): Promise<RunningAgent> {
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const livenessTimeoutMs = opts.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS;
  const addresses = listenerAddresses({
    proxyIp: opts.proxyIp,
    ...(opts.outboundPort ? { outboundPort: opts.outboundPort } : {}),
    hbone: opts.controlTls !== undefined,
  });
  const { listeners, predecessor } = prepared ?? prepareListeners(stateDir, addresses);
  const addressOf = (name: string) => addresses.find((a) => a.name === name)!;

  // one ProxyState per snapshot, swapped whole: every lookup below reads the current one;
  // until the control plane answers, the one the agent before this one served
  const lastGood = readLastGood(stateDir, opts.node);
  let state = lastGood?.snapshot ? new ProxyState(lastGood.snapshot) : ProxyState.EMPTY;
  let liveSnapshot = false;
  let datapath: Datapath | undefined;
  let enrollment: Enrollment | undefined;
  /** the proxies: in this process, or a pool of worker processes */
  let serving: Serving | undefined;
  let pool: WorkerPool | undefined;
  let cni: CniServer | undefined;
  let inbound: InboundDatapath | undefined;
  let inboundAttached = false;
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  let watch: SnapshotWatch | undefined;
  let handoff: HandoffServer | undefined;
  let rescan: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  /** the datapath is this agent's to change (not before a predecessor let go, not after a successor took over) */
  let owner = !predecessor;
  let handedOver = false;
  /** an earlier agent's datapath is pinned and works: this agent serves before loading its own */
  let adopting = false;
  const startedAt = performance.now();
  /** the inbound capture's listening descriptor (the SOCKMAP's socket) */
  let inboundFd = -1;
  /** with workers: the primary's own copies of the listening descriptors, closed when it stops accepting */
  let heldFds: number[] = [];
  const closeHeld = () => {
    for (const fd of heldFds.splice(0)) closeDescriptor(fd);
  };

  // identities: the certificates the agent before this one held serve at once (checked against
  // the --root-cert roots); new ones come from the control plane's CA over the same TLS
  // channel as discovery, once that client is loaded (after the proxy accepts)
  let controlCreds: ControlPlaneCredentials | undefined;
  let caClient: CertificateSigner | undefined;
  let signerReady!: (s: CertificateSigner) => void;
  let signerFailed!: (err: unknown) => void;
  const signer = new Promise<CertificateSigner>((resolve, reject) => ((signerReady = resolve), (signerFailed = reject)));
  signer.catch(() => undefined); // a start that fails before: the requests waiting get its error
  // freed native memory goes back to the system after bursts (certificates, snapshots) and each minute
  const trimmer = new MemoryTrimmer({ trim: mallocTrim });
  // eslint-disable-next-line prefer-const -- assigned once the identity manager exists
  let writer: LastGoodWriter;
  const identity = opts.controlTls
    ? new IdentityManager({
        node: opts.node,
        signer,
        initialTrustBundle: readRootCertFile(opts.controlTls.rootCert),
        registry,
        onChange: () => {
          writer?.changed();
          trimmer.poke();
          pool?.identitiesChanged();
        },
        ...(opts.rootChangeSpreadMs !== undefined ? { rootChangeSpreadMs: opts.rootChangeSpreadMs } : {}),
      })
    : undefined;
  if (!jsStreamSocketGuard.installed)
    log.warn(
      "this Node's JSStreamSocket is not the one the write guard knows: a peer's FIN during an HTTP/2 write over HBONE may crash the agent (transport/http2-write-fix.ts)",
    );
  writer = new LastGoodWriter(stateDir, opts.node, () => ({ snapshot: state.snapshot, identities: identity?.held() ?? [] }));
  if (lastGood?.snapshot) {
    identity?.restore(lastGood.identities);
    identity?.onSnapshot(lastGood.snapshot);
    snapshotVersion.set(lastGood.snapshot.version);
    log.info(
      { version: lastGood.snapshot.version, identities: lastGood.identities.length, age: Date.now() - lastGood.writtenAt },
      'serving from the last good state until the control plane answers',
    );
  }

  // This node's pods as the last reconcile saw them. Enrolment and the inbound capture depend
  // on nothing else in a snapshot, so a snapshot that changes only the rest of the mesh
  // (endpoints elsewhere, Services, policies: most of a cluster's churn) skips the scan of
  // netns and links, ~60 ms of CPU per snapshot with 500 pods on the node (ARCHITECTURE.md,
  // "An idle agent"). The rescan and the CNI plugin's ADD still reconcile whatever changed.
  // A failed reconcile forgets it, so the next snapshot retries.
  let reconciledPods: string | undefined;
  const reconcileInbound = (s: Snapshot) =>
    owner
      ? inbound?.reconcile(meshedPods(s, opts.node)).then(
          () => {
            if (!inboundAttached) retireOlder();
            inboundAttached = true;
          },
          (err: unknown) => {
            reconciledPods = undefined;
            log.error({ err }, 'inbound capture reconcile failed; will retry');
          },
        )
      : undefined;
  const reconcileAll = (s: Snapshot, trigger: 'snapshot' | 'rescan' | 'start') => {
    if (!owner) return;
    const pods = nodePodsKey(s, opts.node);
    if (trigger === 'snapshot' && pods === reconciledPods) return;
    reconciledPods = pods;
    datapathReconciles.inc({ trigger });
    const en = enrollment;
    void en?.reconcile(s).then(() => {
      if (en.lastReconcileFailed) reconciledPods = undefined;
    });
    void reconcileInbound(s);
  };
  // an upgrade across pin versions: the older version's links ran beside ours until now
  const retireOlder = () => {
    try {
      Datapath.retireOlderVersions(pinDir);
    } catch (err) {
      log.warn({ err }, 'could not retire the pins of an older datapath version');
    }
  };

  const startAdmin = async () => {
    // after a handoff the predecessor lets go of the admin port a moment after it answered
    for (let attempt = 0; ; attempt++) {
      try {
        return await adminServer();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !predecessor || attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const [adminHost, adminPort] = splitHostPort(opts.admin ?? `${opts.proxyIp}:${PORTS.admin}`);
  // pods never reach this agent's ports or the control plane through the passthrough
  passthroughGuard.configure({ agentPorts: [adminPort, opts.outboundPort ?? PORTS.outbound], control: opts.control });
  const adminServer = () =>
    startAdminServer(
      adminHost,
      adminPort,
      {
        // ready as soon as it serves: on a restart the datapath an earlier agent left redirects
        // and captures the pods it knew before this one has enrolled and attached anything
        notReady() {
          if (!state.snapshot) return 'no snapshot from the control plane yet';
          if (!datapath) return 'datapath not attached';
          if (!serving?.listening.outbound) return 'outbound listener not up';
          if (!serving.listening.inbound) return `inbound capture listener (${PORTS.inbound}) not up`;
          if (identity && !serving.listening.hbone) return `HBONE listener (${PORTS.hbone}) not up`;
          if (!adopting) {
            if (!enrollment?.ready) return 'pods not enrolled yet';
            if (!inboundAttached) return 'inbound capture not attached yet';
          }
          // a runtime creating a pod once this agent is ready must find the CNI plugin's socket
          // (found by the suite under load: the lab's first CNI ADD came before it listened)
          if (opts.cniSocket !== false && !cni) return 'CNI socket not listening yet';
          if (!owner) return 'taking over from the agent before this one';
          return undefined;
        },
        ...(opts.workers && opts.workers > 1
          ? { metrics: () => pool?.metrics() ?? registry.metrics().then((body) => ({ body, contentType: registry.contentType })) }
          : {}),
        async debug() {
          const proxies = (await serving?.debug()) ?? {};
          return {
            node: opts.node,
            pid: process.pid,
            workerPids: pool?.pids ?? [],
            snapshotVersion: state.version,
            snapshotSource: liveSnapshot ? 'control plane' : state.snapshot ? 'last good state' : 'none',
            listeners: listeners.origin,
            liveness: datapath
              ? {
                  ...datapath.liveness(),
                  heartbeatNs: String(datapath.liveness().heartbeatNs),
                  timeoutNs: String(datapath.liveness().timeoutNs),
                }
              : undefined,
            enrolled: enrollment?.list().map((p) => ({ ...p, cookie: String(p.cookie) })) ?? [],
            // the node's meshed pods as the snapshot names them (the dashboard lists them)
            meshedPods:
              state.snapshot?.workloads
                .filter((w) => w.meshed && w.node === opts.node)
                .map((w) => ({ namespace: w.namespace, name: w.name, workload: workloadName(w), ip: w.ip })) ?? [],
            ...proxies,
            inboundCapture: {
              pods: inbound?.capturedPods() ?? [],
              failOpen: inbound?.failOpenPods() ?? [],
              links: inbound?.attachments().map((a) => `${a.name}/${a.direction}`) ?? [],
            },
            identities: identity?.status() ?? [],
            trustBundle: identity?.trustBundle().map((pem) => new X509Certificate(pem).fingerprint256) ?? [],
          };
        },
      },
      { isNode: (ip) => passthroughGuard.node.has(ip), ...opts.adminAccess },
    );

  const onSnapshot = (s: Snapshot) => {
    if (handedOver) return; // the successor serves new connections; ours drain on what they had
    state = new ProxyState(s);
    // connections served in this process (--workers 1) meet the new policy; workers do it themselves
    reauthorizeInbound(() => state.security);
    liveSnapshot = true;
    snapshotVersion.set(s.version);
    applyTelemetry(s);
    log.info({ version: s.version, services: s.services.length, workloads: s.workloads.length }, 'snapshot applied');
    controlCreds?.setTrustBundle(s.trustBundle);
    identity?.onSnapshot(s);
    pool?.setSnapshot(s);
    pool?.identitiesChanged(); // the trust bundle may have changed
    writer.changed();
    reconcileAll(s, 'snapshot');
    cni?.snapshotChanged();
    trimmer.poke();
  };
  const closeIdentity = () => {
    signerFailed(new Error('the agent stopped'));
    identity?.close();
    caClient?.close();
    controlCreds?.close();
  };

  try {
    // a predecessor answers readiness until it lets go of the admin port
    if (!predecessor) admin = await startAdmin();

    // the redirect datapath, attached or adopted from the pins an earlier agent left, before
    // the proxy accepts: its getsockopt hook must cover this process's cgroup (a new one for
    // each agent container on Kubernetes) for the proxy to read original destinations
    adopting = Datapath.pinned(pinDir);
    const podsCgroup = opts.podsCgroup ?? cgroup2Mount();
    datapath = await Datapath.open({
      pinDir,
      podsCgroup,
      proxyCgroup: ownCgroup(),
      proxyIp: opts.proxyIp,
      proxyPort: opts.outboundPort ?? PORTS.outbound,
      mark: PROXY_MARK,
    });
    enrollment = new Enrollment(opts.node, datapath, new PodNetnsScanner(opts.netnsDir ?? '/run/netns'));

    // access logs and traces as the environment sets them (the Telemetry resources refine them
    // per workload); workers configure their own from the same environment (worker-main.ts)
    configureTelemetry({ NODEMESH_NODE_NAME: opts.node, ...process.env });
    setMeshedPods(() => state.snapshot?.workloads.reduce((n, w) => (w.meshed && w.node === opts.node ? n + 1 : n), 0) ?? 0);
    // serve: the proxies accept on the listeners (held since the process started), here or in workers
    if (!identity)
      log.warn('no control-plane TLS, so no workload identities: HBONE is off and meshed destinations are reached in plaintext');
    const servingConfig: ServingConfig = {
      node: opts.node,
      proxyIp: opts.proxyIp,
      outboundPort: opts.outboundPort ?? PORTS.outbound,
      ...(opts.proxy?.timeouts ? { timeouts: opts.proxy.timeouts } : {}),
      ...(opts.proxy?.limits ? { limits: opts.proxy.limits } : {}),
    };
    const fds = {
      outbound: listeners.take(addressOf('outbound')),
      inbound: listeners.take(addressOf('inbound')),
      ...(identity ? { hbone: listeners.take(addressOf('hbone')) } : {}),
    };
    inboundFd = fds.inbound;
    if (opts.workers && opts.workers > 1) {
      // the primary keeps its copies of the descriptors (a replaced worker inherits them, a
      // successor takes them over) and closes them when it stops accepting; HBONE's is the
      // pool's from here (it accepts there and hands connections to the workers)
      heldFds = [fds.outbound, fds.inbound];
      const { WorkerPool } = await import('./workers/worker-pool.js');
      pool = await WorkerPool.start({
        count: opts.workers,
        config: servingConfig,
        fds,
        guard: { agentPorts: [adminPort, opts.outboundPort ?? PORTS.outbound], control: opts.control },
        snapshot: () => state.snapshot,
        identity,
      });
      serving = pool;
    } else {
      serving = await ProxyServing.start(servingConfig, fds, () => state, identity);
    }
    listeners.closeUntaken();
    // a restart: captured SYNs reach the new listener before the inbound programs are loaded
    // (a successor's listener is the very socket the SOCKMAP holds already)
    if (!predecessor) adopting = InboundDatapath.adoptListener(pinDir, inboundFd) && adopting;
    // fail-open pods stop bypassing the proxy: it serves (a predecessor's heartbeat goes on beside ours until it lets go)
    const dp = datapath;
    dp.heartbeat(livenessTimeoutMs);
    heartbeat = setInterval(() => {
      // with workers, the heartbeat says the proxy serves only while one of them does
      if (pool && !pool.listening.outbound) return;
      try {
        dp.heartbeat(livenessTimeoutMs);
      } catch (err) {
        log.warn({ err }, 'heartbeat not written');
      }
    }, HEARTBEAT_MS);
    heartbeat.unref();
    log.info(
      {
        workers: pool?.count ?? 1,
        listeners: listeners.origin,
        ms: Math.round(performance.now() - startedAt),
        sinceProcessStart: Math.round(process.uptime() * 1000),
        cpuMs: cpuMs(),
      },
      'proxy accepting',
    );

    // the rest of the agent, once the connections that queued while it started were served
    const waited = await untilEventLoopQuiet();
    log.debug({ waited, sinceProcessStart: Math.round(process.uptime() * 1000) }, 'loading the rest of the agent');

    // the control plane: its client (gRPC, the protos) is loaded now, not before serving
    if (opts.controlTls) {
      const [{ ControlPlaneCredentials }, { createCertificateClient }] = await Promise.all([
        import('../control/api/control-credentials.js'),
        import('../control/api/ca-client.js'),
      ]);
      controlCreds = new ControlPlaneCredentials({
        rootCertFile: opts.controlTls.rootCert,
        ...(opts.controlTls.tokenFile ? { tokenFile: opts.controlTls.tokenFile } : { nodeCredentialDir: opts.controlTls.nodeCredential! }),
      });
      if (state.snapshot) controlCreds.setTrustBundle(state.snapshot.trustBundle);
      caClient = createCertificateClient({ address: opts.control, credentials: controlCreds.credentials });
      signerReady(caClient);
    }
    const { watchSnapshots } = await import('../control/api/discovery-client.js');
    watch = watchSnapshots({
      address: opts.control,
      node: opts.node,
      onSnapshot,
      // a failed stream (retried with backoff) or a refused snapshot (the last good one stays)
      onError: (err) => log.warn({ err: err.message }, 'control plane'),
      onRejected: () => snapshotsRejected.inc(),
      onConnected: (up) => controlPlaneConnected.set(up ? 1 : 0),
      ...(controlCreds ? { credentials: controlCreds.credentials } : {}),
    });

    await untilEventLoopQuiet();
    inbound = await InboundDatapath.open({ pinDir: datapath.pinDir });
    inbound.setListener(inboundFd);
    await collectAgentProcessMetrics();

    // this agent serves: the one before it stops accepting and drains
    if (predecessor) {
      await predecessor.confirm();
      admin = await startAdmin();
      owner = true;
    }
    if (state.snapshot) reconcileAll(state.snapshot, 'start');
    const en = enrollment;
    if (opts.cniSocket !== false) {
      const { CniServer } = await import('./datapath/cni-server.js');
      cni = await CniServer.listen({
        path: opts.cniSocket ?? path.join(stateDir, 'cni.sock'),
        enrollment: en,
        snapshot: () => state.snapshot,
        // the new pod's veth: its inbound capture is attached before the runtime starts it
        afterAdd: async () => {
          if (state.snapshot) await reconcileInbound(state.snapshot);
        },
        ...(opts.cniUnknownPodWaitMs ? { unknownPodWaitMs: opts.cniUnknownPodWaitMs } : {}),
      });
    }
    // Every snapshot reconciles enrollment and the inbound capture (onSnapshot), and the CNI
    // plugin hands over each new pod's netns and veth as it is created: this rescan is only
    // the safety net for what neither tells (a pod made while the plugin was not installed,
    // a veth another CNI re-created), so it is slow.
    rescan = setInterval(() => {
      if (state.snapshot) reconcileAll(state.snapshot, 'rescan');
    }, opts.rescanMs ?? RESCAN_SAFETY_NET_MS);
    rescan.unref();
    handoff = await offerHandoff(stateDir, {
      listeners: () => listeners.list(),
      prepare: () => writer.flush(),
      release,
    });
    log.info(
      {
        ms: Math.round(performance.now() - startedAt),
        from: predecessor ? `agent ${predecessor.pid}` : listeners.origin,
        // jemalloc as the DaemonSet preloads it, or glibc's (ARCHITECTURE.md, "Agent memory")
        allocator: mallocName(),
      },
      'agent serving',
    );
  } catch (err) {
    // nothing half-started may outlive a failed start; the datapath stays as it was (a
    // predecessor, if any, keeps serving: it never let go)
    predecessor?.abandon();
    trimmer.close();
    await cni?.close();
    clearInterval(rescan);
    clearInterval(heartbeat);
    watch?.close();
    closeIdentity();
    admin?.close();
    setMeshedPods(undefined);
    await serving?.close();
    await closeTelemetry();
    closeHeld();
    listeners.closeUntaken();
    await inbound?.close();
    datapath?.close();
    throw err;
  }

  let released = false;
  /** A successor serves: stop accepting and stop writing the datapath; connections drain. */
  async function release(): Promise<void> {
    handedOver = true;
    owner = false;
    released = true;
    clearInterval(rescan);
    void cni?.close({ keepFile: true }); // the successor listens on the same path
    clearInterval(heartbeat); // the successor's heartbeat goes on; never "down" here
    writer.close(); // the successor owns the file now
    stopAccepting();
    log.info('handed over to a successor; draining');
  }

  /**
   * Each close stops its listener at once (closing our descriptor: a successor's keeps the
   * socket open); its promise only resolves once its connections are gone, which the drain
   * watches by counting them.
   */
  function stopAccepting(): void {
    serving?.stopAccepting();
    closeHeld();
    admin?.close();
  }

  const openConnections = async () => (await serving?.openConnections()) ?? 0;

  let resolveHandedOver!: () => void;
  const handedOverP = new Promise<void>((resolve) => (resolveHandedOver = resolve));
  void handoff?.handedOver.then(resolveHandedOver);

  let stopping: Promise<void> | undefined;
  return {
    handedOver: handedOverP,
    stop({ cut = new Promise<never>(() => {}) } = {}) {
      stopping ??= (async () => {
        await handoff?.close();
        if (!released) {
          owner = false;
          clearInterval(rescan);
          clearInterval(heartbeat);
          // fail-open pods bypass us from now on; every other pod fails closed
          try {
            datapath?.markDown();
          } catch (err) {
            log.warn({ err }, 'could not mark the proxy down');
          }
          writer.flush();
          writer.close();
          stopAccepting();
        }
        await cni?.close({ keepFile: released });
        const how = await drain(openConnections, opts.drainMs ?? DEFAULT_DRAIN_MS, cut);
        log.info({ how, left: await openConnections() }, 'drain over');
        watch?.close();
        closeIdentity();
        trimmer.close();
        setMeshedPods(undefined);
        await serving?.close();
        await closeTelemetry(); // after the drain: the requests that finished in it are logged
        await inbound?.close();
        datapath?.close();
        log.info(
          released
            ? 'agent stopped after handing over'
            : 'agent stopped; the datapath stays (fail closed until an agent serves again; `nodemesh agent cleanup` removes it)',
        );
      })();
      return stopping;
    },
  };
}

/** What enrolment and the inbound capture read of a snapshot: this node's pods, their addresses and modes. */
function nodePodsKey(s: Snapshot, node: string): string {
  const pods: string[] = [];
  for (const w of s.workloads) if (w.node === node) pods.push(`${w.uid} ${w.ip} ${w.meshed ? 'm' : '-'}${w.failOpen ? 'o' : '-'}`);
  return pods.sort().join('\n');
}
