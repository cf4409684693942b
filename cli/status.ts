// `nodemesh status`: is the mesh healthy? The control plane (ready, snapshot version, config
// summary) and each agent: readiness, the snapshot version it runs and its lag behind the
// control plane's, meshed pods, the earliest certificate expiry, memory. Against any control
// plane and agents (--control, --agent) or a lab (--name). Exit 1 when something is not ready.
import { labState } from '../deploy/lab/lab.js';
import { outputFormat, type Values } from './command-table.js';
import { adminHeaders } from './agent-admin.js';
import { earliestExpiry, surveyMesh, type MeshSurvey } from './mesh-survey.js';
import { colours, printData, table } from './output.js';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export async function controlAdminAddress(lab?: string): Promise<string> {
  if (process.env.NODEMESH_CONTROL_ADMIN) return process.env.NODEMESH_CONTROL_ADMIN;
  const s = await labState(lab);
  if (!s.controlAddress) throw new Error(`lab ${s.name} runs no control plane`);
  return s.controlAddress.admin;
}

export async function runStatus(v: Values, out: NodeJS.WritableStream): Promise<number> {
  const control = str(v.control);
  const agents = v.agent as string[] | undefined;
  const lab = str(v.name);
  const survey = await surveyMesh({ ...(control ? { control } : {}), ...(agents ? { agents } : {}), ...(lab ? { lab } : {}), headers: adminHeaders(str(v['token-file'])) });
  const format = outputFormat(v.output);
  printData(out, format, statusData(survey), () => formatStatus(survey, format === 'wide', out));
  return (survey.control && !survey.control.ready) || survey.agents.some((a) => !a.ready) ? 1 : 0;
}

/** What `-o json|yaml` prints: `control` and `agents` (each with `lag`, `earliestCertificateExpiry`). */
export function statusData(s: MeshSurvey): Record<string, unknown> {
  return {
    control: s.control ?? null,
    agents: s.agents.map((a) => {
      const exp = earliestExpiry(a);
      return {
        ...a,
        lag: s.control?.snapshotVersion !== undefined && a.snapshotVersion !== undefined ? s.control.snapshotVersion - a.snapshotVersion : null,
        earliestCertificateExpiry: exp !== undefined ? new Date(exp).toISOString() : null,
      };
    }),
  };
}

export function formatStatus(s: MeshSurvey, wide: boolean, out: NodeJS.WritableStream): string {
  const c = colours(out);
  const lines: string[] = [];
  const cp = s.control;
  if (!cp) lines.push('control plane: not known (give --control HOST:PORT or --name LAB)');
  else if (!cp.reachable) lines.push(`control plane ${cp.address}: ${c.red('UNREACHABLE')} (${cp.error})`);
  else {
    const sum = cp.summary;
    const a = sum?.analysis;
    lines.push(
      `control plane ${cp.address}: ${cp.ready ? c.green('ready') : c.red(`NOT READY (${cp.error})`)}, snapshot v${cp.snapshotVersion ?? '?'}` +
        (sum ? `, config ${sum.accepted} accepted, ${sum.rejected} rejected, ${sum.fileErrors} file error(s)` : '') +
        (a ? `, analysis ${a.errors} error(s), ${a.warnings} warning(s)` : ''),
    );
  }
  const head = ['NODE', 'ADMIN', 'READY', 'SNAPSHOT', 'LAG', 'PODS', 'CERT EXPIRY', 'MEMORY'];
  const rows = [wide ? [...head, 'REASON'] : head];
  for (const a of s.agents) {
    const exp = earliestExpiry(a);
    const lag = cp?.snapshotVersion !== undefined && a.snapshotVersion !== undefined ? String(cp.snapshotVersion - a.snapshotVersion) : '-';
    const row = [
      a.gateway ? `${a.node} (gateway)` : a.node,
      a.admin,
      a.ready ? c.green('yes') : c.red('NO'),
      a.snapshotVersion !== undefined ? `v${a.snapshotVersion}` : '-',
      lag,
      a.meshedPods !== undefined ? String(a.meshedPods) : '-',
      exp !== undefined ? inTime(exp - Date.now()) : '-',
      a.memoryBytes ? `${Math.round(a.memoryBytes / 2 ** 20)}Mi` : '-',
    ];
    rows.push(wide ? [...row, a.reason ?? ''] : row);
  }
  lines.push('', table(rows).trimEnd());
  const notReady = s.agents.filter((a) => !a.ready);
  if (!wide) for (const a of notReady) lines.push(`  ${a.node}: ${a.reason ?? 'not ready'}`);
  return `${lines.join('\n')}\n`;
}

export function inTime(ms: number): string {
  if (ms < 0) return `expired ${inTime(-ms)} ago`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
