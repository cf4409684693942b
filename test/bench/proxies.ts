// What the proxies of a variant did during a run: the CPU they used (the two agents, or the
// two haproxy processes, from /proc/<pid>/stat) and, for nodemesh, the proof that the run went
// over mutual TLS: the agents' own Istio metrics, read before and after the run.
//   L4 (tcp ports): the DESTINATION's agent counts the connections it accepted over HBONE
//     (or the same-node path) with connection_security_policy="mutual_tls" — it verified
//     the client certificate before counting them.
//   L7 (http ports): the SOURCE's agent counts the requests it sent with
//     connection_security_policy="mutual_tls" (their upstream connections are pooled across
//     runs, so the destination sees no new connection per run); the destination's side of
//     the L7 path is proven once per lab by verifyMesh().
import { scrape, sumMetric } from '../../cli/prom-text.js';
import type { BenchLab } from './bench-lab.js';
import { cpuSeconds } from './lab-exec.js';
import { VARIANTS, type VariantId } from './settings.js';

/** The two processes that carry a variant's traffic: [source side, destination side]. */
export async function proxyPids(lab: BenchLab, v: VariantId): Promise<{ src: number; dst: number } | undefined> {
  switch (VARIANTS[v].proxies) {
    case 'agents': {
      const a = await lab.agentPids();
      return { src: a['node-a']!, dst: a['node-b']! };
    }
    case 'haproxy': {
      const h = await lab.haproxyPids();
      return { src: h['haproxy-a']!, dst: h['haproxy-b']! };
    }
    default:
      return undefined;
  }
}

export interface CpuWindow {
  /** CPU seconds of the source-side and destination-side proxy since start() (both 0 for direct) */
  stop(): Promise<{ srcCpuS: number; dstCpuS: number }>;
}

export async function cpuWindow(lab: BenchLab, v: VariantId): Promise<CpuWindow> {
  const pids = await proxyPids(lab, v);
  if (!pids) return { stop: async () => ({ srcCpuS: 0, dstCpuS: 0 }) };
  // an agent with proxy workers: the agent and its workers (a worker replaced mid-run would
  // count from its start; none is, in a healthy run)
  const agents = VARIANTS[v].proxies === 'agents';
  const src = agents ? await lab.agentTree('node-a', pids.src) : [pids.src];
  const dst = agents ? await lab.agentTree('node-b', pids.dst) : [pids.dst];
  const cpu = async (ps: number[]) => {
    let sum = 0;
    for (const p of ps) sum += await cpuSeconds(p).catch(() => 0);
    return sum;
  };
  const s0 = await cpu(src);
  const d0 = await cpu(dst);
  return {
    stop: async () => ({ srcCpuS: (await cpu(src)) - s0, dstCpuS: (await cpu(dst)) - d0 }),
  };
}

const MTLS = 'mutual_tls';

interface Counter {
  admin: string;
  metric: string;
  labels: Record<string, string>;
}

/**
 * Which counters prove a nodemesh variant's run went over mTLS (none: not a nodemesh
 * variant). The destination's agent names the Service by the pod (an HBONE tunnel carries
 * the pod's address, not the Service), so its counter is matched by workloads.
 */
function proofCounters(lab: BenchLab, v: VariantId): Counter[] {
  const host = (svc: string) => `${svc}.mesh.svc.cluster.local`;
  const a = lab.node('node-a').agentAdmin;
  const b = lab.node('node-b').agentAdmin;
  const tcp = 'istio_tcp_connections_opened_total';
  const fromClient = {
    source_workload: 'client',
    source_principal: 'spiffe://cluster.local/ns/mesh/sa/client',
    connection_security_policy: MTLS,
  };
  switch (v) {
    case 'nm-l4':
      return [
        { admin: a, metric: tcp, labels: { reporter: 'source', destination_service: host('web-tcp'), ...fromClient } },
        {
          admin: b,
          metric: tcp,
          labels: {
            reporter: 'destination',
            destination_workload: 'backend-tcp',
            destination_principal: 'spiffe://cluster.local/ns/mesh/sa/backend-tcp',
            ...fromClient,
          },
        },
      ];
    case 'nm-same-l4':
      return [
        {
          admin: a,
          metric: tcp,
          labels: {
            reporter: 'destination',
            destination_workload: 'near-tcp',
            destination_principal: 'spiffe://cluster.local/ns/mesh/sa/near-tcp',
            ...fromClient,
          },
        },
      ];
    case 'nm-l7':
      return [
        {
          admin: a,
          metric: 'istio_requests_total',
          labels: { reporter: 'source', destination_service: host('web'), connection_security_policy: MTLS },
        },
      ];
    case 'nm-same-l7':
      return [
        {
          admin: a,
          metric: 'istio_requests_total',
          labels: { reporter: 'source', destination_service: host('near'), connection_security_policy: MTLS },
        },
      ];
    default:
      return [];
  }
}

export interface MtlsProof {
  /** the first counter's increase over the run; throws when the run was not carried over mTLS */
  check(): Promise<number>;
}

const show = (c: Counter) =>
  `${c.metric}{${Object.entries(c.labels)
    .map(([k, x]) => `${k}="${x}"`)
    .join(',')}} of ${c.admin}`;

export async function mtlsProof(lab: BenchLab, v: VariantId): Promise<MtlsProof> {
  const counters = proofCounters(lab, v);
  const read = async () => Promise.all(counters.map(async (c) => sumMetric(await scrape(c.admin), c.metric, c.labels)));
  const before = await read();
  return {
    check: async () => {
      const after = await read();
      counters.forEach((c, i) => {
        if (!(after[i]! - before[i]! >= 1))
          throw new Error(`${v}: ${show(c)} did not grow during the run: the traffic did not go over mutual TLS`);
      });
      return counters.length ? after[0]! - before[0]! : 0;
    },
  };
}

/**
 * Once per lab, before measuring: the meshed backend's effective mTLS mode is STRICT (from
 * the control plane's snapshot), both nodes' agents report the L7 and L4 paths as
 * mutual_tls with the workloads' SPIFFE principals on the destination side, and node-b holds
 * inbound HBONE connections. Returns the evidence, one line per check.
 */
export async function verifyMesh(lab: BenchLab): Promise<string[]> {
  const evidence: string[] = [];
  const res = await fetch(`http://${lab.state.controlAddress!.admin}/debug/snapshot`, { signal: AbortSignal.timeout(10_000) });
  const snap = (await res.json()) as { security?: { workloads?: { workload: string; mtlsMode: string }[] } };
  for (const w of ['mesh/backend', 'mesh/near']) {
    const mode = snap.security?.workloads?.find((x) => x.workload === w)?.mtlsMode;
    if (mode !== 'STRICT') throw new Error(`the control plane compiled mTLS mode ${mode ?? 'none'} for ${w}, not STRICT`);
    evidence.push(`${w}: effective PeerAuthentication mode STRICT (control plane snapshot)`);
  }
  const principals = {
    source_principal: 'spiffe://cluster.local/ns/mesh/sa/client',
    connection_security_policy: MTLS,
    reporter: 'destination',
  };
  for (const [node, dst] of [
    ['node-b', 'backend'],
    ['node-a', 'near'],
  ] as const) {
    const n = sumMetric(await scrape(lab.node(node).agentAdmin), 'istio_tcp_connections_opened_total', {
      ...principals,
      destination_workload: dst,
      destination_principal: `spiffe://cluster.local/ns/mesh/sa/${dst}`,
    });
    if (!(n >= 1)) throw new Error(`${node}'s agent reports no mutual_tls connection to ${dst} from the client's SPIFFE identity`);
    evidence.push(
      `${node} (destination) reports ${n} mutual_tls connection(s) to mesh/${dst} (spiffe://cluster.local/ns/mesh/sa/${dst}) from spiffe://cluster.local/ns/mesh/sa/client`,
    );
  }
  const state = (await (
    await fetch(`http://${lab.node('node-b').agentAdmin}/debug/state`, { signal: AbortSignal.timeout(10_000) })
  ).json()) as { hbone?: { inboundConnections?: number } };
  if (!((state.hbone?.inboundConnections ?? 0) >= 1))
    throw new Error("node-b's agent holds no inbound HBONE connection after traffic across nodes");
  evidence.push(`node-b holds ${state.hbone!.inboundConnections} inbound HBONE connection(s) (/debug/state)`);
  return evidence;
}
