// What `nodemesh status` and `nodemesh check` look at: the control plane's admin port
// (15014: readiness, config status, connected agents, CA metrics) and each agent's (15020:
// readiness, /debug/state, /metrics), read once with short timeouts, with what could not
// be read said rather than thrown. Which control plane and agents: the flags (--control,
// --agent), else the agents the control plane knows (their admin port on the address they
// connect from), else the lab's (--name).
import { AGENT_PORTS, GATEWAY_ADMIN_MODE } from '../common/ports.js';
import { refusalHint } from './agent-admin.js';
import { parsePromText, sumMetric } from './prom-text.js';

export interface ControlView {
  address: string;
  reachable: boolean;
  ready: boolean;
  error?: string;
  snapshotVersion?: number;
  summary?: { accepted: number; rejected: number; fileErrors: number; analysis?: { errors: number; warnings: number; infos: number } };
  /** nodes with an agent connected to discovery */
  connected?: { node: string; peer: string; sentVersion: number }[];
  /** the CA's signing certificate's end, seconds since the epoch */
  signerExpiry?: number;
}

export interface AgentView {
  node: string;
  admin: string;
  reachable: boolean;
  ready: boolean;
  /** why not ready, or why unreachable */
  reason?: string;
  snapshotVersion?: number;
  meshedPods?: number;
  certificates?: { spiffeId: string; notAfter?: string; lastError?: string }[];
  trustBundle?: string[];
  memoryBytes?: number;
  controlConnected?: boolean;
  /** the agent's clock minus ours (from its HTTP Date header), ms */
  clockSkewMs?: number;
  /**
   * an east-west gateway (`agent --gateway`), not a node's agent: it watches the control plane
   * as the node its pod runs on, so it is listed with that node's agent, and enrols no pod
   */
  gateway?: boolean;
}

export interface MeshSurvey {
  control?: ControlView;
  agents: AgentView[];
}

export interface SurveyTargets {
  control?: string;
  agents?: string[];
  lab?: string;
  headers?: Record<string, string>;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; date?: string; error?: string }> {
  try {
    const r = await fetch(url, { headers, signal: AbortSignal.timeout(3_000) });
    const body = await r.text();
    return { status: r.status, body: refusalHint(r.status) ?? body, date: r.headers.get('date') ?? undefined };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { status: 0, body: '', error: e.cause?.code ?? e.message };
  }
}

export async function surveyMesh(t: SurveyTargets): Promise<MeshSurvey> {
  let controlAddress = t.control ?? process.env.NODEMESH_CONTROL_ADMIN;
  let agentTargets: { node: string; admin: string }[] | undefined = t.agents?.map((a) => ({ node: a, admin: a }));
  if (!controlAddress || !agentTargets) {
    const { labState } = await import('../deploy/lab/lab.js');
    const s = await labState(t.lab).catch((err: Error) => {
      if (controlAddress) return undefined;
      throw err;
    });
    if (s) {
      controlAddress ??= s.controlAddress?.admin;
      if (!t.control) agentTargets ??= s.nodes.map((n) => ({ node: n.name, admin: n.agentAdmin }));
    }
  }
  const control = controlAddress ? await surveyControl(controlAddress) : undefined;
  agentTargets ??= (control?.connected ?? []).map((a) => ({ node: a.node, admin: `${peerHost(a.peer)}:${AGENT_PORTS.admin}` }));
  const agents = await Promise.all(agentTargets.map((a) => surveyAgent(a.node, a.admin, t.headers ?? {})));
  return { ...(control ? { control } : {}), agents };
}

function peerHost(peer: string): string {
  // grpc-js peers: `ipv4:10.0.0.2:41234`, `ipv6:[::1]:41234`, or `10.0.0.2:41234`
  const p = peer.replace(/^ipv[46]:/, '');
  return p.slice(0, p.lastIndexOf(':'));
}

async function surveyControl(address: string): Promise<ControlView> {
  const base = /^[a-z]+:\/\//i.test(address) ? address.replace(/\/+$/, '') : `http://${address}`;
  const [ready, status, agents, metrics] = await Promise.all([get(`${base}/healthz/ready`), get(`${base}/debug/config_status`), get(`${base}/debug/agents`), get(`${base}/metrics`)]);
  if (ready.status === 0) return { address, reachable: false, ready: false, error: ready.error ?? 'unreachable' };
  const v: ControlView = { address, reachable: true, ready: ready.status === 200 };
  if (ready.status !== 200) v.error = ready.body.trim();
  if (status.status === 200) {
    const s = JSON.parse(status.body) as { snapshotVersion: number; summary: ControlView['summary'] };
    v.snapshotVersion = s.snapshotVersion;
    if (s.summary) v.summary = s.summary;
  }
  if (agents.status === 200) v.connected = (JSON.parse(agents.body) as { node: string; peer: string; sentVersion: number }[]).map((a) => ({ node: a.node, peer: a.peer, sentVersion: a.sentVersion }));
  if (metrics.status === 200) {
    const samples = parsePromText(metrics.body);
    if (samples.some((s) => s.name === 'nodemesh_ca_signer_expiry_timestamp_seconds')) v.signerExpiry = sumMetric(samples, 'nodemesh_ca_signer_expiry_timestamp_seconds');
  }
  return v;
}

async function surveyAgent(node: string, admin: string, headers: Record<string, string>): Promise<AgentView> {
  const [ready, state, metrics] = await Promise.all([get(`http://${admin}/healthz/ready`, headers), get(`http://${admin}/debug/state`, headers), get(`http://${admin}/metrics`, headers)]);
  if (ready.status === 0) return { node, admin, reachable: false, ready: false, reason: `unreachable (${ready.error})` };
  const v: AgentView = { node, admin, reachable: true, ready: ready.status === 200 };
  if (ready.status !== 200) v.reason = ready.body.trim();
  if (ready.date) v.clockSkewMs = Date.parse(ready.date) - Date.now();
  if (state.status === 200) {
    const d = JSON.parse(state.body) as { mode?: string; node?: string; snapshotVersion: number; enrolled?: unknown[]; identities?: AgentView['certificates']; trustBundle?: string[] };
    if (d.node) v.node = d.node;
    v.snapshotVersion = d.snapshotVersion;
    if (d.mode === GATEWAY_ADMIN_MODE) v.gateway = true;
    else v.meshedPods = d.enrolled?.length ?? 0;
    v.certificates = (d.identities ?? []).map((c) => ({ spiffeId: c.spiffeId, ...(c.notAfter ? { notAfter: c.notAfter } : {}), ...(c.lastError ? { lastError: c.lastError } : {}) }));
    v.trustBundle = d.trustBundle ?? [];
  } else if (!v.reason && state.status !== 0) v.reason = `/debug/state: ${state.body.trim()}`;
  if (metrics.status === 200) {
    const samples = parsePromText(metrics.body);
    v.memoryBytes = sumMetric(samples, 'nodemesh_agent_process_resident_memory_bytes');
    v.controlConnected = sumMetric(samples, 'nodemesh_agent_control_plane_connected') > 0;
  }
  return v;
}

/** The earliest certificate end of an agent, ms since the epoch. */
export function earliestExpiry(a: AgentView): number | undefined {
  const ends = (a.certificates ?? []).map((c) => (c.notAfter ? Date.parse(c.notAfter) : NaN)).filter(Number.isFinite);
  return ends.length ? Math.min(...ends) : undefined;
}
