// The suite's main lab ("bench"): written for the run into a temporary directory (cluster
// YAML, the HAProxy pair's configurations and certificates), brought up, checked, and taken
// down with everything it made. Two nodes:
//
//   node-a: mesh/client (meshed; the nodemesh variants' load), mesh/near and mesh/near-tcp
//           (meshed backends for the same-node paths), plain/client (unmeshed; direct and HAProxy variants),
//           plain/ipt-client (unmeshed; captured by an iptables DNAT for the capture scenario),
//           plain/haproxy-a
//   node-b: mesh/backend and mesh/backend-tcp (meshed), plain/plain-backend (unmeshed: the same program, for the
//           direct and HAProxy paths — plaintext to a meshed pod would be captured by its
//           node proxy, and STRICT refuses it), plain/haproxy-b
//
// Mesh-wide STRICT (a PeerAuthentication in istio-system): the meshed backends take mutual
// TLS only. Services: web (HTTP ports → L7) selects backend, web-tcp (tcp- ports → L4)
// backend-tcp; near selects near, near-tcp near-tcp. The L4 Services have pods of their own:
// a pod port that an HTTP Service also targets is HTTP to the destination's node proxy
// (it parses the requests for its metrics and policies), and the L4 rows would carry L7
// work at the destination. plain-backend and haproxy-b are headless (their names
// resolve to the pods in the pods' /etc/hosts, which is how haproxy finds them).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { labAgentPid, labDown, labStartAgent, labStopAgent, labUp, type LabState } from '../../deploy/lab/lab.js';
import { AGENT_PORTS } from '../../common/ports.js';
import { agentGcEnv, collectGarbage } from './agent-gc.js';
import { allPairPorts, PAIR_VARIANTS, pairPort, writePairFiles } from './haproxy-pair.js';
import { benchTempDir, cgroupPids, comm, labRun, parentPid, podProgram, removeBenchTempDir } from './lab-exec.js';
import { BACKEND_PORTS, type Proto, type VariantId } from './settings.js';

export const MAIN_LAB = 'bench';

type Doc = Record<string, unknown>;

const sleepPod = (ns: string, name: string, node: string, extra: Doc = {}): Doc => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, ...extra },
  spec: { nodeName: node, serviceAccountName: name, containers: [{ name: 'sleep', command: ['sleep', 'infinity'] }] },
});

/** A backend pod: the HTTP/1.1, h2c and TCP servers, and the gRPC server, as two containers. */
const backendPod = (ns: string, name: string, node: string, app: string): Doc => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels: { app } },
  spec: {
    nodeName: node,
    serviceAccountName: name,
    containers: [
      {
        name: 'servers',
        command: ['node', podProgram('backend.js')],
        ports: (['h1', 'h2', 'bulk', 'echo'] as const).map((p) => ({ containerPort: BACKEND_PORTS[p] })),
      },
      { name: 'grpc', command: ['node', podProgram('grpc-backend.js')], ports: [{ containerPort: BACKEND_PORTS.grpc }] },
    ],
  },
});

const haproxyPod = (name: 'haproxy-a' | 'haproxy-b', node: string, ports: number[]): Doc => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'plain', labels: { app: name } },
  spec: {
    nodeName: node,
    // -db: foreground, no daemon (the lab owns the process); cwd is the lab dir
    containers: [{ name: 'haproxy', command: ['haproxy', '-db', '-f', `${name}.cfg`], ports: ports.map((p) => ({ containerPort: p })) }],
  },
});

/** L7 Services declare HTTP ports (http, http2, grpc); L4 ones the same ports as tcp-…. */
const service = (name: string, app: string, l4: boolean): Doc => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'mesh' },
  spec: {
    selector: { app },
    ports: l4
      ? (['h1', 'h2', 'grpc', 'bulk', 'echo'] as const).map((p) => ({
          name: `tcp-${p}`,
          port: BACKEND_PORTS[p],
          targetPort: BACKEND_PORTS[p],
        }))
      : [
          { name: 'http', port: BACKEND_PORTS.h1, targetPort: BACKEND_PORTS.h1 },
          { name: 'http2', port: BACKEND_PORTS.h2, targetPort: BACKEND_PORTS.h2 },
          { name: 'grpc', port: BACKEND_PORTS.grpc, targetPort: BACKEND_PORTS.grpc },
        ],
  },
});

const headless = (name: string): Doc => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'plain' },
  spec: { clusterIP: 'None', selector: { app: name }, ports: [{ name: 'tcp', port: 1 }] },
});

export function mainLabDocuments(): Doc[] {
  const ports = allPairPorts();
  return [
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh', labels: { 'nodemesh.io/mesh': 'enabled' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'istio-system' },
      spec: { mtls: { mode: 'STRICT' } },
    },
    service('web', 'backend', false),
    service('web-tcp', 'backend-tcp', true),
    service('near', 'near', false),
    service('near-tcp', 'near-tcp', true),
    headless('plain-backend'),
    headless('haproxy-b'),
    sleepPod('mesh', 'client', 'node-a'),
    backendPod('mesh', 'near', 'node-a', 'near'),
    backendPod('mesh', 'near-tcp', 'node-a', 'near-tcp'),
    sleepPod('plain', 'client', 'node-a'),
    sleepPod('plain', 'ipt-client', 'node-a'),
    haproxyPod(
      'haproxy-a',
      'node-a',
      ports.map((p) => p.a),
    ),
    backendPod('mesh', 'backend', 'node-b', 'backend'),
    backendPod('mesh', 'backend-tcp', 'node-b', 'backend-tcp'),
    backendPod('plain', 'plain-backend', 'node-b', 'plain-backend'),
    haproxyPod(
      'haproxy-b',
      'node-b',
      ports.map((p) => p.b),
    ),
  ];
}

export class BenchLab {
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly state: LabState,
    /** what up() gave the agents' environment: a restart gives it again (restartAgents) */
    private readonly agentEnv: Record<string, string>,
  ) {}

  /** Writes the lab dir, brings the lab up (tearing down a leftover of the same name first). */
  static async up(opts: { haproxyThreads: number; heldConnections: number; timeoutMs?: number }): Promise<BenchLab> {
    const dir = await benchTempDir();
    try {
      await writeFile(
        path.join(dir, 'cluster.yaml'),
        mainLabDocuments()
          .map((d) => `---\n${stringify(d)}`)
          .join(''),
      );
      await writePairFiles(dir, opts.haproxyThreads);
      // BENCH_WORKERS: the agents' proxy workers (agent --workers; the lab's default is 1)
      // the held-connections scenario holds all its connections from the one client pod: the
      // per-source limit (4,096 by default, transport/source-limits.ts) is raised above them,
      // or the pod's connections past it are refused (that limit has its own lab test)
      // and the agents run a full garbage collection when asked (collectAgentGarbage)
      await mkdir(path.join(dir, 'gc'));
      const env = {
        NODEMESH_WORKERS: process.env.BENCH_WORKERS ?? '1',
        NODEMESH_MAX_CONNECTIONS_PER_SOURCE: String(Math.max(4096, opts.heldConnections + 1000)),
        ...agentGcEnv(path.join(dir, 'gc')),
      };
      const state = await labUp({ dir, name: MAIN_LAB, env });
      const lab = new BenchLab(MAIN_LAB, dir, state, env);
      await lab.captureByIptables();
      return lab;
    } catch (err) {
      await labDown({ name: MAIN_LAB }).catch(() => undefined);
      await removeBenchTempDir(dir);
      throw err;
    }
  }

  async down(): Promise<void> {
    try {
      await labDown({ name: this.name });
    } finally {
      await removeBenchTempDir(this.dir);
    }
  }

  pod(id: string): LabState['pods'][number] {
    const [ns, name] = id.split('/');
    const p = this.state.pods.find((x) => x.namespace === ns && x.name === name);
    if (!p) throw new Error(`lab ${this.name} has no pod ${id}`);
    return p;
  }

  node(name: string): LabState['nodes'][number] {
    const n = this.state.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`lab ${this.name} has no node ${name}`);
    return n;
  }

  serviceIp(name: string): string {
    const s = this.state.services.find((x) => x.namespace === 'mesh' && x.name === name);
    if (!s) throw new Error(`lab ${this.name} has no Service mesh/${name}`);
    return s.clusterIp;
  }

  run(target: string, argv: string[], timeoutMs: number) {
    return labRun(this.name, target, argv, timeoutMs);
  }

  /** Where a variant's client sends a protocol's traffic. */
  target(variant: VariantId, proto: Proto): { host: string; port: number } {
    const port = BACKEND_PORTS[proto];
    switch (variant) {
      case 'direct':
        return { host: this.pod('plain/plain-backend').ip, port };
      case 'nm-l4':
        return { host: this.serviceIp('web-tcp'), port };
      case 'nm-l7':
        return { host: this.serviceIp('web'), port };
      case 'nm-same-l4':
        return { host: this.serviceIp('near-tcp'), port };
      case 'nm-same-l7':
        return { host: this.serviceIp('near'), port };
      default: {
        const { mode, key } = PAIR_VARIANTS[variant];
        const p = pairPort(mode, key, proto);
        if (p === undefined) throw new Error(`the HAProxy pair in ${mode} mode does not carry ${proto}`);
        return { host: this.pod('plain/haproxy-a').ip, port: p };
      }
    }
  }

  /**
   * The agents' pids, node by node: the agent process the lab's supervisor runs (its starts
   * file; the state file names the supervisor), checked against the agent's cgroup (which
   * also holds the supervisor and the short-lived commands the agent runs).
   */
  async agentPids(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const n of this.state.nodes) {
      const pid = await labAgentPid(this.name, n.name);
      if (pid === undefined || !(await cgroupPids(n.agentCgroup)).includes(pid))
        throw new Error(`node ${n.name}: its agent (pid ${pid ?? 'unknown'}) is not running in ${n.agentCgroup}`);
      out[n.name] = pid;
    }
    return out;
  }

  /**
   * A full garbage collection in each agent (as started by up(): pods/collect-garbage.ts), so
   * that what a burst left is collected now, not in a later scenario's timed runs.
   */
  async collectAgentGarbage(): Promise<void> {
    for (const pid of Object.values(await this.agentPids())) await collectGarbage(pid, path.join(this.dir, 'gc'));
  }

  /**
   * Stops both agents (node-a first: node-b's pooled inbound HBONE connection closes with it,
   * so its drain is short), then starts them again with the environment up() gave them (the
   * per-source limit, the garbage-collection hook) and `env` over it; resolves once both are
   * ready.
   */
  async restartAgents(env: Record<string, string> = {}): Promise<void> {
    const nodes = this.state.nodes.map((n) => n.name).sort();
    for (const node of nodes) await labStopAgent(this.name, node);
    for (const node of nodes) await labStartAgent(this.name, node, { env: { ...this.agentEnv, ...env } });
  }

  /** An agent and its proxy workers (BENCH_WORKERS > 1): the processes whose CPU and memory are the agent's. */
  async agentTree(node: string, agent: number): Promise<number[]> {
    const pids = await cgroupPids(this.node(node).agentCgroup);
    const out = [agent];
    for (const pid of pids) if (pid !== agent && (await parentPid(pid)) === agent) out.push(pid);
    return out;
  }

  /** haproxy-a's and haproxy-b's pids: the state file's, checked to be haproxy in the pod's cgroup. */
  async haproxyPids(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const name of ['haproxy-a', 'haproxy-b']) {
      const pod = this.pod(`plain/${name}`);
      const pid = this.state.processes.find((p) => p.role === 'pod' && p.name === `plain/${name}/haproxy`)?.pid;
      if (pid === undefined || !(await cgroupPids(pod.cgroup)).includes(pid) || (await comm(pid)) !== 'haproxy')
        throw new Error(`pod plain/${name}: haproxy (pid ${pid ?? 'unknown'}) is not running in ${pod.cgroup}`);
      out[name] = pid;
    }
    return out;
  }

  /**
   * The capture scenario's iptables path: in node-a's netns, connections from plain/ipt-client
   * to plain-backend's echo port are DNATed to the node proxy's outbound port, so the proxy
   * reads their original destination from conntrack (getsockopt SO_ORIGINAL_DST, which the
   * eBPF hook leaves to the kernel when it has no record) — the path istio-cni's and
   * Istio's sidecar redirection take. DNAT to the proxy's address rather than REDIRECT:
   * REDIRECT picks the address of the interface the packet came in on (the pod bridge), and
   * the proxy listens on the node's address only; the NAT and conntrack work is the same.
   * The rule dies with the node's netns at `lab down`.
   */
  private async captureByIptables(): Promise<void> {
    const a = this.node('node-a');
    await this.run(
      'node/node-a',
      [
        'iptables',
        '-w',
        '5',
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-s',
        this.pod('plain/ipt-client').ip,
        '-d',
        this.pod('plain/plain-backend').ip,
        '-p',
        'tcp',
        '--dport',
        String(BACKEND_PORTS.echo),
        '-j',
        'DNAT',
        '--to-destination',
        `${a.ip}:${AGENT_PORTS.outbound}`,
      ],
      15_000,
    );
  }
}
