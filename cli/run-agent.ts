// `nodemesh agent`: the node agent in the foreground. Its listening sockets come first —
// taken over from the agent running on this node (an upgrade), or bound — before the agent
// itself is loaded, so that no connection is refused while it starts (an upgrade) or they
// wait in the kernel's queue (a restart). SIGTERM/SIGINT: stop accepting, drain, exit; a
// second signal cuts the drain short. A successor taking over makes it drain and exit too.
// The datapath stays in every case: `nodemesh agent cleanup` removes it.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AgentOptions } from '../agent/agent.js';
import { handoffPath } from '../agent/lifecycle/handoff.js';
import { DEFAULT_STATE_DIR, listenerAddresses, prepareListeners } from '../agent/lifecycle/prepare.js';
import { defaultWorkerCount } from '../agent/workers/worker-count.js';
import { istioDuration } from '../control/validate/durations.js';
import { untilSignal } from './signals.js';

export async function runAgent(args: string[]): Promise<number> {
  if (args[0] === 'cleanup') return cleanup(args.slice(1));
  const { values } = parseArgs({
    args,
    options: {
      node: { type: 'string' },
      control: { type: 'string' },
      'proxy-ip': { type: 'string' },
      admin: { type: 'string' },
      'pods-cgroup': { type: 'string' },
      'pin-dir': { type: 'string' },
      'netns-dir': { type: 'string' },
      'cni-socket': { type: 'string' },
      'root-cert': { type: 'string' },
      'node-credential': { type: 'string' },
      'token-file': { type: 'string' },
      'root-change-spread': { type: 'string' },
      'state-dir': { type: 'string' },
      'drain-period': { type: 'string' },
      'liveness-timeout': { type: 'string' },
      'request-headers-timeout': { type: 'string' },
      'max-connections-per-source': { type: 'string' },
      'max-requests-per-source': { type: 'string' },
      'insecure-control': { type: 'boolean' },
      'admin-trusted-networks': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'metrics-token-file': { type: 'string' },
      workers: { type: 'string' },
      gateway: { type: 'boolean' },
    },
  });
  const node = values.node ?? process.env.NODE_NAME;
  const control = values.control ?? process.env.NODEMESH_CONTROL;
  const proxyIp = values['proxy-ip'] ?? process.env.NODE_IP;
  const missing = [
    !node && '--node (or NODE_NAME)',
    !control && '--control (or NODEMESH_CONTROL)',
    !proxyIp && '--proxy-ip (or NODE_IP)',
  ].filter(Boolean);
  const rootCert = values['root-cert'] ?? process.env.NODEMESH_ROOT_CERT;
  const nodeCredential = values['node-credential'] ?? process.env.NODEMESH_NODE_CREDENTIAL;
  const tokenFile = values['token-file'] ?? process.env.NODEMESH_TOKEN_FILE;
  if (!values['insecure-control']) {
    if (!rootCert) missing.push('--root-cert FILE (or NODEMESH_ROOT_CERT: the mesh root(s) the control plane is verified with)');
    if (!nodeCredential && !tokenFile) missing.push("--node-credential DIR (or NODEMESH_NODE_CREDENTIAL: this node's cert.pem and key.pem) or --token-file FILE (or NODEMESH_TOKEN_FILE: the projected ServiceAccount token, audience nodemesh)");
  }
  if (missing.length) throw new Error(`agent: missing ${missing.join(', ')}${values['insecure-control'] ? '' : ' (--insecure-control: plaintext, no workload identities; development only)'}`);
  if (values.gateway) return runGateway(values, { node: node!, control: control!, proxyIp: proxyIp!, rootCert, nodeCredential, tokenFile });
  const opts: AgentOptions = { node: node!, control: control!, proxyIp: proxyIp! };
  if (values.admin) opts.admin = values.admin;
  // who besides the node may use the admin port (agent/admin/admin-access.ts)
  opts.adminAccess = adminAccess(values);
  if (values['pods-cgroup']) opts.podsCgroup = values['pods-cgroup'];
  if (values['pin-dir']) opts.pinDir = values['pin-dir'];
  if (values['netns-dir']) opts.netnsDir = values['netns-dir'];
  if (values['cni-socket']) opts.cniSocket = values['cni-socket'];
  if (!values['insecure-control']) opts.controlTls = tokenFile ? { rootCert: rootCert!, tokenFile } : { rootCert: rootCert!, nodeCredential: nodeCredential! };
  opts.stateDir = values['state-dir'] ?? process.env.NODEMESH_STATE_DIR ?? DEFAULT_STATE_DIR;
  const drainPeriod = values['drain-period'] ?? process.env.NODEMESH_DRAIN_PERIOD;
  if (drainPeriod) opts.drainMs = duration('--drain-period (NODEMESH_DRAIN_PERIOD)', drainPeriod, true);
  const livenessTimeout = values['liveness-timeout'] ?? process.env.NODEMESH_LIVENESS_TIMEOUT;
  if (livenessTimeout) opts.livenessTimeoutMs = duration('--liveness-timeout (NODEMESH_LIVENESS_TIMEOUT)', livenessTimeout, false);
  const spread = values['root-change-spread'] ?? process.env.NODEMESH_ROOT_CHANGE_SPREAD;
  if (spread) opts.rootChangeSpreadMs = (await import('./ca.js')).parseDurationSeconds(spread) * 1000;
  // the proxy's request-head timeout and bound per source pod (transport/timeouts.ts, source-limits.ts)
  const headers = values['request-headers-timeout'] ?? process.env.NODEMESH_REQUEST_HEADERS_TIMEOUT;
  const maxConnections = values['max-connections-per-source'] ?? process.env.NODEMESH_MAX_CONNECTIONS_PER_SOURCE;
  const maxRequests = values['max-requests-per-source'] ?? process.env.NODEMESH_MAX_REQUESTS_PER_SOURCE;
  opts.proxy = {
    ...(headers ? { timeouts: { requestHeadersMs: duration('--request-headers-timeout (NODEMESH_REQUEST_HEADERS_TIMEOUT)', headers, false) } } : {}),
    limits: { ...(maxConnections ? { maxConnectionsPerSource: count('--max-connections-per-source', maxConnections) } : {}), ...(maxRequests ? { maxRequestsPerSource: count('--max-requests-per-source', maxRequests) } : {}) },
  };

  // proxy workers: as Envoy's --concurrency, the cores the agent may use unless told (agent/workers/)
  const workers = values.workers ?? process.env.NODEMESH_WORKERS;
  opts.workers = workers ? count('--workers (NODEMESH_WORKERS)', workers) || defaultWorkerCount() : defaultWorkerCount();

  // before the agent is loaded (~0.5–1.5 s of modules): its sockets, from its predecessor or bound
  const prepared = prepareListeners(opts.stateDir, listenerAddresses({ proxyIp: opts.proxyIp, hbone: opts.controlTls !== undefined }));
  const { startAgent } = await import('../agent/agent.js');
  const agent = await startAgent(opts, prepared);
  await Promise.race([untilSignal(), agent.handedOver]);
  await agent.stop({ cut: untilSignal() });
  return 0;
}

/** Who besides the node (or the gateway's own addresses) may use the admin port (agent/admin/admin-access.ts). */
function adminAccess(values: Record<string, string | boolean | undefined>): NonNullable<AgentOptions['adminAccess']> {
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const trusted = str('admin-trusted-networks') ?? process.env.NODEMESH_ADMIN_TRUSTED_NETWORKS;
  const adminToken = str('admin-token-file') ?? process.env.NODEMESH_ADMIN_TOKEN_FILE;
  const metricsToken = str('metrics-token-file') ?? process.env.NODEMESH_METRICS_TOKEN_FILE;
  return { trustedNetworks: trusted ? trusted.split(',').filter((c) => c.trim()) : [], ...(adminToken ? { adminTokenFile: adminToken } : {}), ...(metricsToken ? { metricsTokenFile: metricsToken } : {}) };
}

/** The node agent's flags that mean nothing to a gateway (no datapath, no pods, no workers). */
const NOT_FOR_GATEWAY = ['pods-cgroup', 'pin-dir', 'netns-dir', 'cni-socket', 'liveness-timeout', 'request-headers-timeout', 'max-connections-per-source', 'max-requests-per-source', 'workers', 'insecure-control'] as const;

/**
 * `nodemesh agent --gateway`: the east-west gateway of this cluster's network (issue 13;
 * agent/east-west-gateway.ts), with the agent's flags for the control plane, its identity
 * and its admin port. It needs TLS to the control plane: its identity comes from the CA.
 */
async function runGateway(
  values: Record<string, string | boolean | undefined>,
  base: { node: string; control: string; proxyIp: string; rootCert: string | undefined; nodeCredential: string | undefined; tokenFile: string | undefined },
): Promise<number> {
  const stray = NOT_FOR_GATEWAY.filter((f) => values[f] !== undefined);
  if (stray.length) throw new Error(`agent --gateway: ${stray.map((f) => `--${f}`).join(', ')} ${stray.length > 1 ? 'are' : 'is'} for the node agent (a gateway has no datapath, no pods and no workers${stray.includes('insecure-control') ? ', and its identity comes from the CA over TLS' : ''})`);
  const { startEastWestGateway, DEFAULT_GATEWAY_STATE_DIR } = await import('../agent/east-west-gateway.js');
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const drainPeriod = str('drain-period') ?? process.env.NODEMESH_DRAIN_PERIOD;
  const spread = str('root-change-spread') ?? process.env.NODEMESH_ROOT_CHANGE_SPREAD;
  const gateway = await startEastWestGateway({
    node: base.node,
    control: base.control,
    proxyIp: base.proxyIp,
    controlTls: base.tokenFile ? { rootCert: base.rootCert!, tokenFile: base.tokenFile } : { rootCert: base.rootCert!, nodeCredential: base.nodeCredential! },
    stateDir: str('state-dir') ?? process.env.NODEMESH_STATE_DIR ?? DEFAULT_GATEWAY_STATE_DIR,
    adminAccess: adminAccess(values),
    ...(str('admin') ? { admin: str('admin')! } : {}),
    ...(drainPeriod ? { drainMs: duration('--drain-period (NODEMESH_DRAIN_PERIOD)', drainPeriod, true) } : {}),
    ...(spread ? { rootChangeSpreadMs: (await import('./ca.js')).parseDurationSeconds(spread) * 1000 } : {}),
  });
  await untilSignal();
  await gateway.stop({ cut: untilSignal() });
  return 0;
}

/** A whole number of things (0: unbounded), or an error naming the flag. */
function count(flag: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`agent: ${flag} ${JSON.stringify(v)} is not a whole number (0: no bound)`);
  return Number(v);
}

function duration(flag: string, v: string, allowZero: boolean): number {
  try {
    return istioDuration(v, [flag], { allowZero, unbounded: true });
  } catch (err) {
    throw new Error(`agent: ${flag}: ${(err as Error).message}`);
  }
}

/**
 * `nodemesh agent cleanup [--pin-dir DIR] [--state-dir DIR]`: removes what agents left on
 * this node — the inbound tc filters, policy rule and route, the cgroup links and every pin,
 * the last good state — so that pods are reached directly again (an uninstall; agents leave
 * all of it in place when they stop, so that the node fails closed). Refused while an agent
 * runs: it would be left serving without a datapath.
 */
async function cleanup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'pin-dir': { type: 'string' }, 'state-dir': { type: 'string' } } });
  const { DEFAULT_PIN_DIR, Datapath } = await import('../agent/datapath/redirect.js');
  const { InboundDatapath } = await import('../agent/datapath/inbound.js');
  const { connectUnix, closeDescriptor } = await import('../agent/datapath/socket-handoff.js');
  const pinDir = values['pin-dir'] ?? DEFAULT_PIN_DIR;
  const stateDir = values['state-dir'] ?? process.env.NODEMESH_STATE_DIR ?? DEFAULT_STATE_DIR;
  const running = connectUnix(handoffPath(stateDir));
  if (running !== undefined) {
    closeDescriptor(running);
    throw new Error(`agent cleanup: an agent is running on this node (it answers at ${handoffPath(stateDir)}): stop it first`);
  }
  const inbound = await InboundDatapath.cleanup(pinDir);
  const outbound = Datapath.cleanup(pinDir);
  const state = ['last-good.json', 'handoff.sock'].filter((f) => fs.existsSync(path.join(stateDir, f)));
  for (const f of state) fs.rmSync(path.join(stateDir, f), { force: true });
  process.stdout.write(
    `removed: ${inbound.filters.length} tc filters, ${inbound.rules} policy rules, ${inbound.route ? 1 : 0} routes, ` +
      `${outbound.links.length} links, ${outbound.maps.length + inbound.pins.length} pins (${pinDir}), ${state.length} state files (${stateDir})\n`,
  );
  return 0;
}
