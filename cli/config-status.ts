// `nodemesh config status`: fetches /debug/config_status from the control plane's admin
// port and prints one row per resource (kind, namespace/name, status, message) after the
// file-level errors. Exit code: 0 all accepted, 1 anything rejected or a file error,
// 2 the control plane could not be asked.
import { CONTROL_PORTS } from '../common/ports.js';
import type { ConfigStatus } from '../control/config-store.js';

export async function printConfigStatus(adminUrl: string, out: NodeJS.WritableStream): Promise<number> {
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
  out.write(formatConfigStatus(status));
  return status.fileErrors.length > 0 || status.resources.some((r) => r.state === 'Rejected') ? 1 : 0;
}

/** The table printed by printConfigStatus. */
export function formatConfigStatus(status: ConfigStatus): string {
  const rows: string[][] = [['KIND', 'NAMESPACE/NAME', 'STATUS', 'MESSAGE']];
  for (const e of status.fileErrors) {
    const [kind = '-', name = '-'] = e.resource ? e.resource.split(' ') : [];
    rows.push([kind, name, 'Rejected', `${e.code}: ${e.message}`]);
  }
  for (const r of status.resources) {
    rows.push([r.kind, r.namespace ? `${r.namespace}/${r.name}` : r.name, r.state, r.code ? `${r.code}: ${r.message}` : r.message]);
  }
  // a fold, not Math.max(...rows): a spread passes every row as an argument, and 200,000
  // rows overflowed the stack ("Maximum call stack size exceeded")
  const widths = [0, 1, 2].map((i) => rows.reduce((w, row) => Math.max(w, row[i]!.length), 0));
  const lines = rows.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd());
  const rejected = status.resources.filter((r) => r.state === 'Rejected').length;
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
