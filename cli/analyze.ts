// `nodemesh analyze -f DIR|FILE…`: the configuration checked offline, before it is applied,
// as `istioctl analyze` does: the files are read, validated, compiled and analysed by the
// control plane's own code (the file source's scan, the store, the compiler,
// control/analyze/), and every finding is printed with its code, level, file:line, field and
// fix. Exit 1 when a finding is at or above --failure-threshold (default Error), 0 otherwise:
// a CI step. `nodemesh config status` shows the same analysis of a running control plane.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { analyze } from '../control/analyze/analyze.js';
import { countLevels, formatMessage, LEVEL_ORDER, type AnalysisMessage, type Level } from '../control/analyze/messages.js';
import { compileSnapshot } from '../control/compile/compiler.js';
import { ResourceStore, type ConfigStatus } from '../control/config-store.js';
import { FileSource, type FileResult, type SourceState } from '../control/source/files.js';
import { parseYamlFile } from '../control/source/yaml-file.js';
import { UsageError, type OutputFormat } from './command-table.js';
import { colours, printData } from './output.js';

const LEVELS: readonly Level[] = ['Error', 'Warning', 'Info'];

/** Reads, validates, compiles and analyses files and directories as the control plane would. */
export async function analyzePaths(paths: readonly string[]): Promise<ConfigStatus> {
  const files: FileResult[] = [];
  let error: SourceState['error'];
  for (const p of paths) {
    const st = await stat(p).catch(() => undefined);
    if (!st) throw new UsageError(`analyze: ${p} does not exist`);
    if (st.isFile()) {
      const parsed = parseYamlFile(p, await readFile(p, 'utf8'));
      files.push('error' in parsed ? { file: p, documents: [], error: parsed.error, documentErrors: [] } : { file: p, documents: parsed.documents, documentErrors: parsed.documentErrors });
      continue;
    }
    const source = new FileSource({ dir: p, rescanMs: 0, onChange: () => {} });
    try {
      await source.scan(true);
      const state = source.state();
      files.push(...state.files);
      error ??= state.error;
    } finally {
      source.close();
    }
  }
  files.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const store = new ResourceStore();
  const result = store.apply({ files, ...(error ? { error } : {}) });
  const snapshot = compileSnapshot(result.resources);
  const analysis = analyze({ resources: result.resources, services: snapshot.services, documentOf: (r) => store.documentOf(r), statuses: result.statuses, fileErrors: result.fileErrors });
  const rejected = result.statuses.filter((s) => s.state === 'Rejected').length;
  return {
    configDir: paths.map((p) => path.relative(process.cwd(), p) || '.').join(', '),
    ready: true,
    snapshotVersion: snapshot.version,
    resources: result.statuses,
    fileErrors: result.fileErrors,
    summary: { accepted: result.statuses.length - rejected, rejected, fileErrors: result.fileErrors.length, analysis: countLevels(analysis) },
    analysis,
  };
}

export function level(v: unknown, flag: string): Level {
  const l = LEVELS.find((x) => x.toLowerCase() === String(v).toLowerCase());
  if (!l) throw new UsageError(`${flag} ${String(v)}: expected one of ${LEVELS.join(', ')}`);
  return l;
}

/** What `-o json|yaml` prints: the documented keys `summary` and `messages`. */
export function analysisData(messages: readonly AnalysisMessage[], source: string): { source: string; summary: ReturnType<typeof countLevels>; messages: readonly AnalysisMessage[] } {
  return { source, summary: countLevels(messages), messages };
}

export function formatAnalysis(messages: readonly AnalysisMessage[], out: NodeJS.WritableStream): string {
  const c = colours(out);
  const paint = (m: AnalysisMessage) => {
    const text = formatMessage(m);
    const head = `${m.level} [${m.code}]`;
    const coloured = m.level === 'Error' ? c.red(head) : m.level === 'Warning' ? c.yellow(head) : head;
    return coloured + text.slice(head.length);
  };
  const n = countLevels(messages);
  const lines = messages.map(paint);
  lines.push(messages.length === 0 ? '✔ No validation issues found.' : `${n.errors} error(s), ${n.warnings} warning(s), ${n.infos} info(s)`);
  return `${lines.join('\n')}\n`;
}

export async function runAnalyze(values: { file?: string[]; output: OutputFormat; outputThreshold: Level; failureThreshold: Level }, out: NodeJS.WritableStream): Promise<number> {
  if (!values.file || values.file.length === 0) throw new UsageError('analyze: -f DIR|FILE is required (the YAML to check; repeat -f for more)');
  const status = await analyzePaths(values.file);
  const all = status.analysis ?? [];
  const shown = all.filter((m) => LEVEL_ORDER[m.level] <= LEVEL_ORDER[values.outputThreshold]);
  printData(out, values.output, analysisData(shown, status.configDir), () => formatAnalysis(shown, out));
  return all.some((m) => LEVEL_ORDER[m.level] <= LEVEL_ORDER[values.failureThreshold]) ? 1 : 0;
}
