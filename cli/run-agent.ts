// `nodemesh agent`: the node agent in the foreground until SIGTERM/SIGINT, then it detaches
// and unpins everything it attached.
import { parseArgs } from 'node:util';
import { startAgent, type AgentOptions } from '../agent/agent.js';
import { DEFAULT_PIN_DIR, Datapath } from '../agent/datapath/redirect.js';
import { InboundDatapath } from '../agent/datapath/inbound.js';
import { parseDurationSeconds } from './ca.js';
import { untilSignal } from './run-control.js';

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
      'root-cert': { type: 'string' },
      'node-credential': { type: 'string' },
      'root-change-spread': { type: 'string' },
      'request-headers-timeout': { type: 'string' },
      'max-connections-per-source': { type: 'string' },
      'max-requests-per-source': { type: 'string' },
      'insecure-control': { type: 'boolean' },
      'admin-trusted-networks': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'metrics-token-file': { type: 'string' },
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
  if (!values['insecure-control']) {
    if (!rootCert) missing.push('--root-cert FILE (or NODEMESH_ROOT_CERT: the mesh root(s) the control plane is verified with)');
    if (!nodeCredential) missing.push("--node-credential DIR (or NODEMESH_NODE_CREDENTIAL: this node's cert.pem and key.pem)");
  }
  if (missing.length) throw new Error(`agent: missing ${missing.join(', ')}${values['insecure-control'] ? '' : ' (--insecure-control: plaintext, no workload identities; development only)'}`);
  const opts: AgentOptions = { node: node!, control: control!, proxyIp: proxyIp! };
  if (values.admin) opts.admin = values.admin;
  // who besides the node may use the admin port (agent/admin/admin-access.ts)
  const trusted = values['admin-trusted-networks'] ?? process.env.NODEMESH_ADMIN_TRUSTED_NETWORKS;
  const adminToken = values['admin-token-file'] ?? process.env.NODEMESH_ADMIN_TOKEN_FILE;
  const metricsToken = values['metrics-token-file'] ?? process.env.NODEMESH_METRICS_TOKEN_FILE;
  opts.adminAccess = { trustedNetworks: trusted ? trusted.split(',').filter((c) => c.trim()) : [], ...(adminToken ? { adminTokenFile: adminToken } : {}), ...(metricsToken ? { metricsTokenFile: metricsToken } : {}) };
  if (values['pods-cgroup']) opts.podsCgroup = values['pods-cgroup'];
  if (values['pin-dir']) opts.pinDir = values['pin-dir'];
  if (values['netns-dir']) opts.netnsDir = values['netns-dir'];
  if (!values['insecure-control']) opts.controlTls = { rootCert: rootCert!, nodeCredential: nodeCredential! };
  const spread = values['root-change-spread'] ?? process.env.NODEMESH_ROOT_CHANGE_SPREAD;
  if (spread) opts.rootChangeSpreadMs = parseDurationSeconds(spread) * 1000;
  // the proxy's request-head timeout and bound per source pod (transport/timeouts.ts, source-limits.ts)
  const headers = values['request-headers-timeout'] ?? process.env.NODEMESH_REQUEST_HEADERS_TIMEOUT;
  const maxConnections = values['max-connections-per-source'] ?? process.env.NODEMESH_MAX_CONNECTIONS_PER_SOURCE;
  const maxRequests = values['max-requests-per-source'] ?? process.env.NODEMESH_MAX_REQUESTS_PER_SOURCE;
  opts.proxy = {
    ...(headers ? { timeouts: { requestHeadersMs: parseDurationSeconds(headers) * 1000 } } : {}),
    limits: { ...(maxConnections ? { maxConnectionsPerSource: count('--max-connections-per-source', maxConnections) } : {}), ...(maxRequests ? { maxRequestsPerSource: count('--max-requests-per-source', maxRequests) } : {}) },
  };
  const agent = await startAgent(opts);
  await untilSignal();
  await agent.stop();
  return 0;
}

/** A whole number of things (0: unbounded), or an error naming the flag. */
function count(flag: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`agent: ${flag} ${JSON.stringify(v)} is not a whole number (0: no bound)`);
  return Number(v);
}

/**
 * `nodemesh agent cleanup [--pin-dir DIR]`: removes what a crashed agent left on this node —
 * the inbound tc filters, policy rule and route, the cgroup links and every pin — so that
 * pods are reached directly again (an uninstall after a crash). A running agent must be
 * stopped first: it would be detached.
 */
async function cleanup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'pin-dir': { type: 'string' } } });
  const pinDir = values['pin-dir'] ?? DEFAULT_PIN_DIR;
  const inbound = await InboundDatapath.cleanup(pinDir);
  const outbound = Datapath.cleanup(pinDir);
  process.stdout.write(
    `removed: ${inbound.filters.length} tc filters, ${inbound.rules} policy rules, ${inbound.route ? 1 : 0} routes, ` +
      `${outbound.links.length} links, ${outbound.maps.length + inbound.pins.length} pins (${pinDir})\n`,
  );
  return 0;
}
