// `nodemesh config status`: fetches /debug/config_status from the control plane's admin
// port and prints one row per resource (kind, namespace/name, status, message) after the
// file-level errors, every error of a rejected resource under its row, then the analysis
// (control/analyze/). Exit code: 0 all accepted and no analysis Error, 1 anything rejected,
// a file error or an analysis Error, 2 the control plane could not be asked.
import { CONTROL_PORTS } from '../common/ports.js';
import type { ConfigStatus } from '../control/config-store.js';
import { countLevels } from '../control/analyze/messages.js';
import type { OutputFormat } from './command-table.js';
import { formatAnalysis } from './analyze.js';
import { printData, table } from './output.js';

export async function printConfigStatus(adminUrl: string, out: NodeJS.WritableStream, format: OutputFormat = 'table'): Promise<number> {
  const url = statusUrl(adminUrl);
  let status: ConfigStatus;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    status = (await res.json()) as ConfigStatus;
    if (!Array.isArray(status.resources) || !Array.isArray(status.fileErrors)) throw new Error(`unexpected response (is this the control plane admin port, ${CONTROL_PORTS.admin}?)`);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.cause ? `${e.message} (${e.cause.code ?? e.cause.message})` : e.message;
    out.write(`cannot read the configuration status from ${url}: ${why}; is the control plane running, with its admin port (${CONTROL_PORTS.admin} by default) reachable?\n`);
    return 2;
  }
  printData(out, format, status, () => formatConfigStatus(status, format === 'wide', out));
  return configStatusExitCode(status);
}

export function configStatusExitCode(status: ConfigStatus): number {
  const analysisErrors = countLevels(status.analysis ?? []).errors;
  return status.fileErrors.length > 0 || status.resources.some((r) => r.state === 'Rejected') || analysisErrors > 0 ? 1 : 0;
}

/** The table printed by printConfigStatus (wide: the file:line of each resource too). */
export function formatConfigStatus(status: ConfigStatus, wide = false, out?: NodeJS.WritableStream): string {
  const rows: string[][] = [wide ? ['KIND', 'NAMESPACE/NAME', 'STATUS', 'FILE', 'MESSAGE'] : ['KIND', 'NAMESPACE/NAME', 'STATUS', 'MESSAGE']];
  const extra: Map<number, string[]> = new Map();
  for (const e of status.fileErrors) {
    const [kind = '-', name = '-'] = e.resource ? e.resource.split(' ') : [];
    rows.push(wide ? [kind, name, 'Rejected', `${e.file}${e.line ? `:${e.line}` : ''}`, `${e.code}: ${e.message}`] : [kind, name, 'Rejected', `${e.code}: ${e.message}`]);
  }
  for (const r of status.resources) {
    const name = r.namespace ? `${r.namespace}/${r.name}` : r.name;
    const message = r.code ? `${r.code}: ${r.message}` : r.message;
    rows.push(wide ? [r.kind, name, r.state, `${r.file}:${r.line}`, message] : [r.kind, name, r.state, message]);
    // the first error is the row's message; the others under it
    const more = (r.errors ?? []).slice(1).map((e) => `    also ${e.field ? `field ${e.field}` : ''}${e.line ? ` (line ${e.line})` : ''}: ${e.detail}`);
    if (r.moreErrors) more.push(`    and ${r.moreErrors} more error(s)`);
    if (more.length) extra.set(rows.length - 1, more);
  }
  const lines = table(rows)
    .trimEnd()
    .split('\n')
    .flatMap((l, i) => [l, ...(extra.get(i) ?? [])]);
  const rejected = status.resources.filter((r) => r.state === 'Rejected').length;
  // rejected resources are already above, with every error: the analysis adds the rest
  const analysis = (status.analysis ?? []).filter((m) => m.code !== 'IST0106');
  if (status.analysis) lines.push('', 'analysis:', formatAnalysis(analysis, out ?? process.stdout).trimEnd());
  if (status.remoteClusters?.length) {
    lines.push('', 'remote clusters:');
    for (const r of status.remoteClusters)
      lines.push(
        `  ${r.name}${r.network ? ` (network ${r.network})` : ''} from ${r.configDir}: ${r.workloads} workload(s), ${r.services} Service(s) merged, ${r.notExported} not exported, ${r.refused} refused; ${r.accepted} accepted, ${r.rejected} rejected, ${r.fileErrors.length} file error(s)`,
        ...(r.error ? [`    error: ${r.error}`] : []),
      );
  }
  if (status.remoteSecretErrors?.length) {
    lines.push('', 'remote secrets:');
    for (const e of status.remoteSecretErrors) lines.push(`  error: ${e.message}`);
  }
  for (const w of status.clusterWarnings ?? []) lines.push(`  warning: ${w.resource} (${w.file}${w.line ? `:${w.line}` : ''}): ${w.message}`);
  lines.push(
    '',
    `${status.resources.length - rejected} accepted, ${rejected} rejected, ${status.fileErrors.length} file error(s); ` +
      `config ${status.configDir}; snapshot version ${status.snapshotVersion}${status.ready ? '' : ' (not ready)'}`,
  );
  return `${lines.join('\n')}\n`;
}

function statusUrl(adminUrl: string): string {
  const base = /^[a-z]+:\/\//i.test(adminUrl) ? adminUrl : `http://${adminUrl}`;
  const u = new URL(base);
  if (!u.pathname.endsWith('/debug/config_status')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/debug/config_status`;
  return u.toString();
}
