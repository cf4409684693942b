// Gateway mode (`nodemesh agent --gateway`, issue 13): the agent binary as its network's
// east-west gateway. It accepts HBONE on <proxy-ip>:15008 from node proxies of other
// networks and tunnels each CONNECT to a node proxy of its own network ("double HBONE":
// hbone/gateway.ts), and serves admin on <proxy-ip>:15020.
//
// It is an agent without a node: no eBPF, no capture, no CNI server, no pod scan, no
// workers, no listener handoff (a Deployment rolls replicas behind its Service instead).
// What it shares with the agent: the control-plane connection (the snapshot stream and the
// CA over the same TLS channel, authenticated by a node credential or a ServiceAccount
// token), the identity manager (its one certificate, renewed at half-life and moved under a
// new root when the trust bundle gains one), the last good state in --state-dir, the admin
// server and the drain. From every snapshot it takes its scope (hbone/gateway-scope.ts): the
// node proxies of its network it may tunnel to, and its own identity.
//
// Readiness (/healthz/ready) is what a LoadBalancer's health check needs before sending it
// peers: a snapshot, its own certificate, and the HBONE listener up. On SIGTERM it says not
// ready, stops accepting (GOAWAY to its peers, so their next connection goes to another
// replica), lets tunnels finish for the drain period, then closes what is left.
import fs from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { logger } from '../common/log.js';
import { NodemeshError } from '../common/errors.js';
import { AGENT_PORTS, GATEWAY_ADMIN_MODE } from '../common/ports.js';
import { splitHostPort } from '../common/host-port.js';
import { Registry } from '../common/prometheus.js';
import { readRootCertFile } from '../control/api/control-roots.js';
import type { Snapshot } from '../control/api/snapshot.js';
import type { ControlPlaneCredentials } from '../control/api/control-credentials.js';
import type { CertificateSigner } from '../control/api/certificate-signer.js';
import type { SnapshotWatch } from '../control/api/discovery-client.js';
import { startAdminServer } from './admin/admin-server.js';
import type { AdminAccessOptions } from './admin/admin-access.js';
import { HboneGateway } from './hbone/gateway.js';
import { gatewayScope, tokenServiceAccount, type GatewayScope } from './hbone/gateway-scope.js';
import { IdentityManager } from './identity/identity-manager.js';
import { DEFAULT_DRAIN_MS, drain } from './lifecycle/drain.js';
import { LastGoodWriter, readLastGood } from './lifecycle/last-good.js';
import { createGatewayMetrics } from './telemetry/gateway-metrics.js';
import { collectAgentProcessMetrics, controlPlaneConnected, registry, snapshotsRejected, snapshotVersion } from './telemetry/metrics.js';

const log = logger('agent/east-west-gateway');

/** Its own default, so a gateway and an agent on one host never share a last good state. */
export const DEFAULT_GATEWAY_STATE_DIR = '/run/nodemesh/gateway';

export interface GatewayOptions {
  /** the node its pod runs on (NODE_NAME from spec.nodeName) */
  node: string;
  /** the control plane's gRPC address host:port (or several replicas', comma-separated) */
  control: string;
  /** the address it listens on: its pod's IP (POD_IP) */
  proxyIp: string;
  /** admin host:port (default proxyIp:15020) */
  admin?: string;
  /** who may read /debug besides its own addresses (/metrics and /healthz are open) */
  adminAccess?: Omit<AdminAccessOptions, 'isNode' | 'openScopes'>;
  /** the mesh root(s) the control plane is verified with, and how it authenticates */
  controlTls: { rootCert: string; nodeCredential?: string; tokenFile?: string };
  /** its last good state (default /run/nodemesh/gateway) */
  stateDir?: string;
  /** how long tunnels may finish after a stop (default 20 s) */
  drainMs?: number;
  /** when the trust bundle gains a root, its certificate moves under it within this (default 30 s) */
  rootChangeSpreadMs?: number;
  /** tests: another HBONE port than 15008 (the node proxies' port stays 15008) */
  hbonePort?: number;
  /** how long a tunnel's connect to a node proxy may take (default 10 s) */
  connectTimeoutMs?: number;
}

export interface RunningGateway {
  /** where HBONE is accepted (host:port) */
  readonly address: string;
  /** where admin is served (host:port; the loopback one too unless it is loopback) */
  readonly adminAddresses: string[];
  /** not ready, stop accepting, drain (until `cut` resolves at most), close everything */
  stop(opts?: { cut?: Promise<unknown> }): Promise<void>;
}

export async function startEastWestGateway(opts: GatewayOptions): Promise<RunningGateway> {
  if (!isIPv4(opts.proxyIp)) throw new NodemeshError('NM_ERR_CONTROL', `gateway: --proxy-ip ${JSON.stringify(opts.proxyIp)} is not an IPv4 address (the gateway pod's IP, POD_IP)`);
  const stateDir = opts.stateDir ?? DEFAULT_GATEWAY_STATE_DIR;
  const serviceAccount = opts.controlTls.tokenFile ? readTokenServiceAccount(opts.controlTls.tokenFile) : undefined;
  const scopeOf = (s: Snapshot) => gatewayScope(s, { node: opts.node, proxyIp: opts.proxyIp, ...(serviceAccount ? { serviceAccount } : {}) });

  let snapshot: Snapshot | undefined;
  let scope: GatewayScope | undefined;
  let liveSnapshot = false;
  let listening = false;
  let stopping = false;
  // its own series (the gateway's, its identity's) in a registry of its own, served merged
  // with the process's: a second gateway in one process (a test's restart) registers anew
  const own = new Registry();
  const metrics = createGatewayMetrics(own);

  let signerReady!: (s: CertificateSigner) => void;
  const signer = new Promise<CertificateSigner>((resolve) => (signerReady = resolve));
  // eslint-disable-next-line prefer-const -- assigned once the identity manager exists
  let writer: LastGoodWriter;
  const identity = new IdentityManager({
    node: opts.node,
    signer,
    initialTrustBundle: readRootCertFile(opts.controlTls.rootCert),
    registry: own,
    // its one identity is asked for when the snapshot names it, not the node's pods'
    prefetch: false,
    onChange: () => writer?.changed(),
    ...(opts.rootChangeSpreadMs !== undefined ? { rootChangeSpreadMs: opts.rootChangeSpreadMs } : {}),
  });
  writer = new LastGoodWriter(stateDir, opts.node, () => ({ snapshot, identities: identity.held() }));

  const gateway = new HboneGateway({
    host: opts.proxyIp,
    port: opts.hbonePort ?? AGENT_PORTS.hbone,
    identity,
    spiffeId: () => scope?.identity,
    allowed: (ip, port) => scope?.targets.has(`${ip}:${port}`) ?? false,
    observer: metrics,
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
  });

  const apply = (s: Snapshot, source: 'control plane' | 'last good state') => {
    const before = scope;
    snapshot = s;
    scope = scopeOf(s);
    snapshotVersion.set(s.version);
    controlCreds?.setTrustBundle(s.trustBundle);
    identity.onSnapshot(s);
    metrics.scope(scope.targets.size, scope.identity !== undefined);
    if (scope.identity !== before?.identity || scope.problem !== before?.problem || scope.targets.size !== before?.targets.size) {
      const fields = { version: s.version, source, network: scope.network, targets: scope.targets.size, identity: scope.identity };
      if (scope.identity) log.info(fields, 'gateway scope');
      else log.warn(fields, `gateway without an identity: ${scope.problem}`);
    }
    // its certificate ahead of the first peer (renewed by the identity manager from then on)
    if (scope.identity) identity.certificate(scope.identity).catch(() => undefined); // retried on its timer; logged there
    writer.changed();
  };

  const held = (id: string) => identity.status().find((c) => c.spiffeId === id);
  const notReady = (): string | undefined => {
    if (stopping) return 'draining: the gateway is stopping';
    if (!snapshot) return 'no snapshot from the control plane yet';
    if (!scope?.identity) return scope?.problem ?? 'no identity';
    const c = held(scope.identity);
    if (!c?.notAfter || Date.parse(c.notAfter) <= Date.now()) return `no certificate for ${scope.identity} yet${c?.lastError ? ` (${c.lastError})` : ''}`;
    if (!listening) return `HBONE listener (${opts.proxyIp}:${opts.hbonePort ?? AGENT_PORTS.hbone}) not up`;
    return undefined;
  };

  let controlCreds: ControlPlaneCredentials | undefined;
  let caClient: CertificateSigner | undefined;
  let watch: SnapshotWatch | undefined;
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  const ownAddress = (ip: string) => ip === opts.proxyIp || ip.startsWith('127.') || ip === '::1';
  const [adminHost, adminPort] = splitHostPort(opts.admin ?? `${opts.proxyIp}:${AGENT_PORTS.admin}`);

  const closeAll = async () => {
    watch?.close();
    identity.close();
    caClient?.close();
    controlCreds?.close();
    writer.close();
    await gateway.close(false);
    admin?.close();
  };

  try {
    const lastGood = readLastGood(stateDir, opts.node);
    if (lastGood?.snapshot) {
      identity.restore(lastGood.identities);
      apply(lastGood.snapshot, 'last good state');
      log.info({ version: lastGood.snapshot.version, identities: lastGood.identities.length }, 'serving from the last good state until the control plane answers');
    }
    admin = await startAdminServer(
      adminHost,
      adminPort,
      {
        notReady,
        metrics: async () => {
          const merged = Registry.merge([registry, own]);
          return { body: await merged.metrics(), contentType: merged.contentType };
        },
        debug: () => ({
          mode: GATEWAY_ADMIN_MODE,
          node: opts.node,
          pid: process.pid,
          address: `${opts.proxyIp}:${opts.hbonePort ?? AGENT_PORTS.hbone}`,
          snapshotVersion: snapshot?.version ?? 0,
          snapshotSource: liveSnapshot ? 'control plane' : snapshot ? 'last good state' : 'none',
          network: scope?.network,
          identity: scope?.identity,
          problem: scope?.problem,
          targets: [...(scope?.targets ?? [])].sort(),
          tunnels: { ...gateway.stats },
          identities: identity.status(),
          trustBundle: identity.trustBundle().map((pem) => new X509Certificate(pem).fingerprint256),
        }),
      },
      { ...opts.adminAccess, isNode: ownAddress, openScopes: ['metrics'] },
    );

    const [{ ControlPlaneCredentials }, { createCertificateClient }, { watchSnapshots }] = await Promise.all([
      import('../control/api/control-credentials.js'),
      import('../control/api/ca-client.js'),
      import('../control/api/discovery-client.js'),
    ]);
    const { rootCert, tokenFile, nodeCredential } = opts.controlTls;
    controlCreds = new ControlPlaneCredentials({ rootCertFile: rootCert, ...(tokenFile ? { tokenFile } : { nodeCredentialDir: nodeCredential! }) });
    if (snapshot) controlCreds.setTrustBundle(snapshot.trustBundle);
    caClient = createCertificateClient({ address: opts.control, credentials: controlCreds.credentials });
    signerReady(caClient);
    watch = watchSnapshots({
      address: opts.control,
      node: opts.node,
      credentials: controlCreds.credentials,
      onSnapshot: (s) => {
        if (stopping) return;
        liveSnapshot = true;
        apply(s, 'control plane');
      },
      onError: (err) => log.warn({ err: err.message }, 'control plane'),
      onRejected: () => snapshotsRejected.inc(),
      onConnected: (up) => controlPlaneConnected.set(up ? 1 : 0),
    });

    await gateway.listen();
    listening = true;
    await collectAgentProcessMetrics();
    log.info({ hbone: `${opts.proxyIp}:${gateway.address.port}`, admin: admin.addresses, node: opts.node, via: tokenFile ? `token of ${serviceAccount!.namespace}/${serviceAccount!.name}` : 'node credential' }, 'east-west gateway accepting');
  } catch (err) {
    // nothing half-started outlives a failed start
    await closeAll();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    address: `${opts.proxyIp}:${gateway.address.port}`,
    adminAddresses: admin!.addresses,
    stop({ cut = new Promise<never>(() => {}) } = {}) {
      stopped ??= (async () => {
        stopping = true;
        writer.flush();
        // GOAWAY: peers open no new streams here; their tunnels may finish
        const closing = gateway.close(true);
        const how = await drain(async () => gateway.stats.open, opts.drainMs ?? DEFAULT_DRAIN_MS, cut);
        log.info({ how, left: gateway.stats.open }, 'drain over');
        await closeAll();
        await closing;
        log.info('east-west gateway stopped');
      })();
      return stopped;
    },
  };
}

function readTokenServiceAccount(file: string): { namespace: string; name: string } {
  try {
    return tokenServiceAccount(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new NodemeshError('NM_ERR_CONTROL', `gateway: --token-file ${file}: ${(err as Error).message}`, { cause: err });
  }
}
