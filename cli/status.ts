// `nodemesh status`: is the mesh healthy? The control plane's config summary, then each
// node agent's readiness and the snapshot version it runs.
import { parseArgs } from 'node:util';
import { labState } from '../deploy/lab/lab.js';
import { adminHeaders, refusalHint } from './agent-admin.js';

export async function controlAdminAddress(lab?: string): Promise<string> {
  if (process.env.NODEMESH_CONTROL_ADMIN) return process.env.NODEMESH_CONTROL_ADMIN;
  const s = await labState(lab);
  if (!s.controlAddress) throw new Error(`lab ${s.name} runs no control plane`);
  return s.controlAddress.admin;
}

async function fetchText(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  try {
    const r = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
    const body = await r.text();
    return { status: r.status, body: refusalHint(r.status) ?? body };
  } catch (err) {
    return { status: 0, body: (err as Error).message };
  }
}

export async function runStatus(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { name: { type: 'string' }, 'token-file': { type: 'string' } } });
  const headers = adminHeaders(values['token-file']);
  const s = await labState(values.name);
  let healthy = true;
  const control = s.controlAddress ? await fetchText(`http://${s.controlAddress.admin}/debug/config_status`) : undefined;
  if (control?.status === 200) {
    const cs = JSON.parse(control.body) as { summary?: Record<string, number> };
    process.stdout.write(`control plane ${s.controlAddress!.admin}: ready; config ${JSON.stringify(cs.summary ?? {})}\n`);
  } else {
    healthy = false;
    process.stdout.write(`control plane: unreachable (${control?.body ?? 'not started'})\n`);
  }
  for (const n of s.nodes) {
    const ready = await fetchText(`http://${n.agentAdmin}/healthz/ready`, headers);
    const dbg = await fetchText(`http://${n.agentAdmin}/debug/state`, headers);
    const d = dbg.status === 200 ? (JSON.parse(dbg.body) as { snapshotVersion: number; enrolled: unknown[] }) : undefined;
    if (ready.status !== 200) healthy = false;
    process.stdout.write(
      `agent ${n.name} ${n.agentAdmin}: ${ready.status === 200 ? 'ready' : `NOT READY (${ready.body.trim()})`}` +
        (d ? `, snapshot v${d.snapshotVersion}, ${d.enrolled.length} pods enrolled` : '') +
        '\n',
    );
  }
  return healthy ? 0 : 1;
}
