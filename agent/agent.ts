// The node agent: one per node. Connects to the control plane, loads and attaches the
// datapath, enrols the meshed pods of its node, runs the outbound proxy and the admin
// server. On SIGTERM it stops accepting, detaches and unpins everything it attached.
import { X509Certificate } from 'node:crypto';
import { logger } from '../common/log.js';
import { AGENT_PORTS as PORTS, PROXY_MARK } from '../common/ports.js';
import { splitHostPort } from '../common/host-port.js';
import { watchSnapshots } from '../control/api/discovery-client.js';
import { createCertificateClient, type CertificateSigner } from '../control/api/ca-client.js';
import { ControlPlaneCredentials } from '../control/api/control-credentials.js';
import { IdentityManager } from './identity/identity-manager.js';
import type { Snapshot } from '../control/api/snapshot.js';
import { startAdminServer } from './admin/admin-server.js';
import { Datapath, cgroup2Mount, ownCgroup } from './datapath/redirect.js';
import { InboundDatapath, meshedPodIps } from './datapath/inbound.js';
import { Enrollment } from './datapath/enrollment.js';
import { InboundCapture } from './proxy/inbound-capture.js';
import { deliverInbound } from './proxy/inbound-delivery.js';
import type { InboundDeliver } from './proxy/inbound-capture.js';
import { HboneConnector } from './hbone/client.js';
import { HboneInbound, provenSourceWorkload } from './hbone/server.js';
import { MeshConnector } from './proxy/mesh-connector.js';
import { controlPlaneConnected, registry, snapshotsRejected, snapshotVersion } from './telemetry/metrics.js';
import { OutboundProxy } from './proxy/outbound.js';
import { passthroughGuard } from './proxy/passthrough-guard.js';
import { PodNetnsScanner } from './datapath/pod-netns.js';
import { ProxyState } from './state/proxy-state.js';
import { TcpConnector } from './transport/connector.js';
import { proxyTimeouts, type ProxyTimeouts } from './transport/timeouts.js';
import type { SourceLimitsOptions } from './transport/source-limits.js';

const log = logger('agent');

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
  /** bpffs directory for pins (default /sys/fs/bpf/nodemesh/v1) */
  pinDir?: string;
  /** directory of the pods' network namespaces (default /run/netns) */
  netnsDir?: string;
  /** how often the netns directory is re-scanned for new pods */
  rescanMs?: number;
  /**
   * TLS to the control plane and workload certificates from its CA: the root(s) to verify
   * the control plane with (PEM file) and this node's credential directory (cert.pem,
   * key.pem). Without it the control connection is plaintext and there are no identities.
   */
  controlTls?: { rootCert: string; nodeCredential: string };
  /** when the trust bundle gains a root, certificates move under it within this (default 30 s) */
  rootChangeSpreadMs?: number;
  /** the proxy's timeouts and bound per source pod (defaults: transport/timeouts.ts, transport/source-limits.ts) */
  proxy?: { timeouts?: Partial<ProxyTimeouts>; limits?: Partial<SourceLimitsOptions> };
}

export interface RunningAgent {
  stop(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  // one ProxyState per snapshot, swapped whole: every lookup below reads the current one
  let state = ProxyState.EMPTY;
  let datapath: Datapath | undefined;
  let enrollment: Enrollment | undefined;
  let proxy: OutboundProxy | undefined;
  let listening = false;
  let rescan: NodeJS.Timeout | undefined;
  let inbound: InboundDatapath | undefined;
  let capture: InboundCapture | undefined;
  let inboundAttached = false;
  let hbone: HboneConnector | undefined;
  let hboneServer: HboneInbound | undefined;
  const reconcileInbound = (s: Snapshot) =>
    inbound?.reconcile(meshedPodIps(s, opts.node)).then(
      () => void (inboundAttached = true),
      (err: unknown) => log.error({ err }, 'inbound capture reconcile failed; will retry'),
    );

  // identities: the control plane's CA over the same TLS channel as discovery
  const controlCreds = opts.controlTls ? new ControlPlaneCredentials({ rootCertFile: opts.controlTls.rootCert, nodeCredentialDir: opts.controlTls.nodeCredential }) : undefined;
  const caClient: CertificateSigner | undefined = controlCreds ? createCertificateClient({ address: opts.control, credentials: controlCreds.credentials }) : undefined;
  const identity = caClient
    ? new IdentityManager({
        node: opts.node,
        signer: caClient,
        initialTrustBundle: controlCreds!.fileRoots(),
        registry,
        ...(opts.rootChangeSpreadMs !== undefined ? { rootChangeSpreadMs: opts.rootChangeSpreadMs } : {}),
      })
    : undefined;

  const [adminHost, adminPort] = splitHostPort(opts.admin ?? `${opts.proxyIp}:${PORTS.admin}`);
  // pods never reach this agent's ports or the control plane through the passthrough
  passthroughGuard.configure({ agentPorts: [adminPort, opts.outboundPort ?? PORTS.outbound], control: opts.control });
  const admin = await startAdminServer(adminHost, adminPort, {
    notReady() {
      if (!state.snapshot) return 'no snapshot from the control plane yet';
      if (!datapath) return 'datapath not attached';
      if (!listening) return 'outbound listener not up';
      if (!enrollment?.ready) return 'pods not enrolled yet';
      if (!capture?.listening) return `inbound capture listener (${PORTS.inbound}) not up`;
      if (!inboundAttached) return 'inbound capture not attached yet';
      if (identity && !hboneServer?.listening) return `HBONE listener (${PORTS.hbone}) not up`;
      return undefined;
    },
    debug() {
      return {
        node: opts.node,
        snapshotVersion: state.version,
        enrolled: enrollment?.list().map((p) => ({ ...p, cookie: String(p.cookie) })) ?? [],
        openConnections: proxy?.openConnections ?? 0,
        traffic: proxy?.l7.debug() ?? {},
        inboundCapture: { pods: inbound?.capturedPods() ?? [], links: inbound?.attachments().map((a) => `${a.name}/${a.direction}`) ?? [] },
        identities: identity?.status() ?? [],
        trustBundle: identity?.trustBundle().map((pem) => new X509Certificate(pem).fingerprint256) ?? [],
        hbone: { outbound: hbone?.pool.stats(), inboundConnections: hboneServer?.connections ?? 0, inbound: hboneServer?.sessionsInfo() ?? [] },
      };
    },
  }, { isNode: (ip) => passthroughGuard.node.has(ip), ...opts.adminAccess });

  const onSnapshot = (s: Snapshot) => {
    state = new ProxyState(s);
    snapshotVersion.set(s.version);
    log.info({ version: s.version, services: s.services.length, workloads: s.workloads.length }, 'snapshot applied');
    controlCreds?.setTrustBundle(s.trustBundle);
    identity?.onSnapshot(s);
    void enrollment?.reconcile(s);
    void reconcileInbound(s);
  };
  const watch = watchSnapshots({
    address: opts.control,
    node: opts.node,
    onSnapshot,
    // a failed stream (retried with backoff) or a refused snapshot (the last good one stays)
    onError: (err) => log.warn({ err: err.message }, 'control plane'),
    onRejected: () => snapshotsRejected.inc(),
    onConnected: (up) => controlPlaneConnected.set(up ? 1 : 0),
    ...(controlCreds ? { credentials: controlCreds.credentials } : {}),
  });
  const closeIdentity = () => {
    identity?.close();
    caClient?.close();
    controlCreds?.close();
  };

  try {
    const podsCgroup = opts.podsCgroup ?? cgroup2Mount();
    datapath = await Datapath.open({
      pinDir: opts.pinDir ?? '/sys/fs/bpf/nodemesh/v1',
      podsCgroup,
      proxyCgroup: ownCgroup(),
      proxyIp: opts.proxyIp,
      proxyPort: opts.outboundPort ?? PORTS.outbound,
      mark: PROXY_MARK,
    });
    log.info({ podsCgroup, proxyIp: opts.proxyIp }, 'datapath attached');

    enrollment = new Enrollment(opts.node, datapath, new PodNetnsScanner(opts.netnsDir ?? '/run/netns'));
    if (state.snapshot) void enrollment.reconcile(state.snapshot);
    rescan = setInterval(() => {
      const s = state.snapshot;
      if (s) void enrollment?.reconcile(s);
      if (s) void reconcileInbound(s); // new pods' veths
    }, opts.rescanMs ?? 2_000);
    rescan.unref();

    // inbound delivery to this node's pods (policy bound): for HBONE tunnels (15008) and the
    // same-node path; the source workload only when its identity is the proven principal
    const podConnector = new TcpConnector(PROXY_MARK);
    const timeouts = proxyTimeouts(opts.proxy?.timeouts);
    const deliverTunnel: InboundDeliver = (s, c) =>
      deliverInbound(s, c, podConnector, {
        security: state.snapshot ? state.security : undefined,
        sourceWorkload: provenSourceWorkload(c, state),
        service: state.serviceFor(c.destination.uid, c.port),
        timeouts,
      });
    // with identities, meshed destinations are reached over HBONE (or the same-node path)
    const tcp = new TcpConnector(PROXY_MARK);
    if (identity) hbone = new HboneConnector({ identity, nodeIp: (w) => state.nodeIp(w.node), mark: PROXY_MARK });
    else log.warn('no control-plane TLS, so no workload identities: HBONE is off and meshed destinations are reached in plaintext');
    proxy = new OutboundProxy({
      host: opts.proxyIp,
      port: opts.outboundPort ?? PORTS.outbound,
      state: () => state,
      connector: hbone ? new MeshConnector({ node: opts.node, hbone, tcp, local: deliverTunnel }) : tcp,
      timeouts,
      ...(opts.proxy?.limits ? { limits: opts.proxy.limits } : {}),
    });
    await proxy.listen();
    listening = true;
    log.info({ address: `${opts.proxyIp}:${opts.outboundPort ?? PORTS.outbound}` }, 'outbound proxy listening');

    if (identity) {
      hboneServer = new HboneInbound({ host: opts.proxyIp, port: PORTS.hbone, node: opts.node, identity, state: () => state, deliver: deliverTunnel, idleTimeoutMs: timeouts.httpIdleMs });
      await hboneServer.listen();
      log.info({ address: `${opts.proxyIp}:${PORTS.hbone}` }, 'HBONE listening');
    }

    // inbound capture (15006): the listener goes into the datapath before any pod IP does
    inbound = await InboundDatapath.open({ pinDir: datapath.pinDir });
    capture = new InboundCapture({
      host: opts.proxyIp,
      port: PORTS.inbound,
      node: opts.node,
      index: () => state,
      deliver: (s, c) =>
        deliverInbound(s, c, podConnector, {
          security: state.snapshot ? state.security : undefined,
          sourceWorkload: state.workloadByIp(c.sourceIp), // plaintext: by address, unproven
          timeouts,
        }),
    });
    await capture.listen();
    inbound.setListener(capture.fd);
    if (state.snapshot) await reconcileInbound(state.snapshot);
  } catch (err) {
    // nothing half-started may outlive a failed start
    clearInterval(rescan);
    watch.close();
    closeIdentity();
    admin.close();
    await proxy?.close(true);
    await hboneServer?.close();
    hbone?.close();
    await capture?.close(true);
    await inbound?.close({ unpin: true });
    datapath?.close({ unpin: true });
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        clearInterval(rescan);
        watch.close();
        closeIdentity();
        await proxy?.close(true);
        await hboneServer?.close();
        hbone?.close();
        await capture?.close(true);
        admin.close();
        await inbound?.close({ unpin: true }); // filters, policy route, pins
        // detach first: from here on new connects from pods are no longer redirected
        datapath?.close({ unpin: true });
        log.info('agent stopped; datapath detached and unpinned');
      })();
      return stopping;
    },
  };
}
