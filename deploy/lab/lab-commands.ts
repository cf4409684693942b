// The contract between the lab and the nodemesh CLI: the command lines the lab runs for
// the control plane and the agents, and the ports and paths it polls for readiness. Kept
// in this one place so a change of flag is a change of this file only.
import { packagePath } from '../../common/paths.js';
import { AGENT_PORTS, CONTROL_PORTS } from '../../common/ports.js';

export const PORTS = { grpc: CONTROL_PORTS.grpc, controlAdmin: CONTROL_PORTS.admin, agentAdmin: AGENT_PORTS.admin } as const;
export const READY_PATH = '/healthz/ready';

/** `<repo>/bin/nodemesh.js` (this file runs from dist/deploy/lab/). */
export const DEFAULT_CLI = packagePath('bin', 'nodemesh.js');

export interface ControlCommand {
  /** the file source's directory; ignored with `kubeconfig` */
  configDir: string;
  /** `--source kubernetes` against the API server this kubeconfig names (`lab up --kubernetes`) */
  kubeconfig?: string;
  /** host:port */
  grpc: string;
  /** host:port */
  admin: string;
  /** the CA state dir (root generated there) and the node CA's certificate */
  caDir: string;
  nodeCa: string;
  /**
   * one cluster of a two-cluster lab: `--cluster`, `--network`, a `--remote-cluster` per other
   * cluster (its config dir stands in for Istio's remote secret) and the plug-in CA's
   * intermediate under the shared root
   */
  cluster?: {
    name: string;
    network: string;
    remotes: { name: string; network: string; configDir: string }[];
    pluginCa: { cert: string; key: string; chain: string };
  };
}

export interface AgentCommand {
  node: string;
  /** the control plane's gRPC host:port */
  control: string;
  podsCgroup: string;
  pinDir: string;
  proxyIp: string;
  /** host:port */
  admin: string;
  /** directory of links to the node's pods' netns (the agent's netnsDir option) */
  netnsDir: string;
  /** the control plane's trust bundle file and this node's credential directory */
  rootCert: string;
  nodeCredential: string;
  /**
   * CIDRs the agent's admin port serves like the node itself: the lab's host (its bridge
   * address), which plays the operator's machine, so the CLI and the tests read /metrics,
   * /debug/state and tap from the root netns while the pods cannot (agent/admin/admin-access.ts)
   */
  adminTrustedNetworks?: string;
  /** the agent's handoff socket and last good state (its --state-dir) */
  stateDir?: string;
}

/**
 * Whether the agent command line carries `--netns-dir`. The agent scans a directory of
 * netns and matches pods by IP; pod IPs repeat across labs, so with several labs at once
 * the agent must scan only its node's directory, not all of /run/netns.
 */
export const AGENT_NETNS_DIR_FLAG: string | undefined = '--netns-dir';

export function controlArgv(cli: string, c: ControlCommand): string[] {
  const source = c.kubeconfig ? ['--source', 'kubernetes', '--kubeconfig', c.kubeconfig] : ['--config-dir', c.configDir];
  const base = [process.execPath, cli, 'control', ...source, '--grpc', c.grpc, '--admin', c.admin, '--ca-dir', c.caDir, '--node-ca', c.nodeCa];
  if (!c.cluster) return base;
  const k = c.cluster;
  return [
    ...base,
    '--cluster', k.name,
    '--network', k.network,
    ...k.remotes.flatMap((r) => ['--remote-cluster', `${r.name}=${r.configDir},network=${r.network}`]),
    '--ca-cert', k.pluginCa.cert,
    '--ca-key', k.pluginCa.key,
    '--ca-chain', k.pluginCa.chain,
  ];
}

export interface GatewayCommand {
  /** the node its pod runs on: the gateway authenticates with that node's credential */
  node: string;
  control: string;
  /** the LoadBalancer address: HBONE on <address>:15008, admin on <address>:15020 */
  address: string;
  rootCert: string;
  nodeCredential: string;
  stateDir: string;
}

/** `nodemesh agent --gateway` (phase3 names): no eBPF, no capture; HBONE in, to its network's node proxies. */
export function gatewayArgv(cli: string, g: GatewayCommand): string[] {
  return [
    process.execPath,
    cli,
    'agent',
    '--gateway',
    '--node', g.node,
    '--control', g.control,
    '--proxy-ip', g.address,
    '--admin', `${g.address}:${PORTS.agentAdmin}`,
    '--state-dir', g.stateDir,
    '--root-cert', g.rootCert,
    '--node-credential', g.nodeCredential,
  ];
}

export function agentArgv(cli: string, a: AgentCommand): string[] {
  return [
    process.execPath,
    cli,
    'agent',
    '--node', a.node,
    '--control', a.control,
    '--pods-cgroup', a.podsCgroup,
    '--pin-dir', a.pinDir,
    '--proxy-ip', a.proxyIp,
    '--admin', a.admin,
    ...(AGENT_NETNS_DIR_FLAG ? [AGENT_NETNS_DIR_FLAG, a.netnsDir] : []),
    ...(a.stateDir ? ['--state-dir', a.stateDir] : []),
    '--root-cert', a.rootCert,
    '--node-credential', a.nodeCredential,
    ...(a.adminTrustedNetworks ? ['--admin-trusted-networks', a.adminTrustedNetworks] : []),
  ];
}

/**
 * The API server stand-in's process entry. It is test code (test/helpers/, beside the
 * stand-in the unit tests use): a development tree has it, a production tree need not.
 */
export const APISERVER_ENTRY = packagePath('dist', 'test', 'helpers', 'kube-apiserver-process.js');

/** The lab's API server stand-in, loaded from the lab's config dir. */
export function apiserverArgv(configDir: string, kubeconfig: string): string[] {
  return [process.execPath, APISERVER_ENTRY, '--config-dir', configDir, '--kubeconfig', kubeconfig];
}

/** The lab's DaemonSet stand-in (lab-supervisor.ts) around an agent command line. */
export function supervisedArgv(startsFile: string, agent: string[]): string[] {
  return [process.execPath, packagePath('dist', 'deploy', 'lab', 'lab-supervisor.js'), '--starts', startsFile, '--', ...agent];
}
