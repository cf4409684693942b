// A run's results as files: <stamp>-<machine>.json (everything, every round), .md (the
// tables: medians with their range over the rounds, ratios from the same round, the
// targets) and SVG charts (-summary, -latency, -saturation, -tcp). A full run written into
// test/bench/results/ also points README.md's performance section at its summary chart.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cell } from './rounds.js';
import type { ScenarioResult } from './scenario.js';
import { VARIANTS, type VariantId } from './settings.js';
import { median, type Spread } from './stats.js';
import { barChart, lineChart, svgDocument } from './svg.js';
import type { TargetResult } from './targets.js';

export interface RunReport {
  suite: 'nodemesh-bench';
  version: 1;
  mode: 'full' | 'quick';
  startedAt: string;
  seconds: number;
  machine: Record<string, unknown>;
  /** os.loadavg() at the start and the end of the run */
  load: { start: number[]; end: number[] };
  notes: string[];
  status: 'ok' | 'failed';
  /** what did not run */
  failures: string[];
  targets: TargetResult[];
  scenarios: ScenarioResult[];
}

const label = (v: string) => VARIANTS[v as VariantId]?.label ?? v;
const num = (v: number | undefined, d = 2) =>
  v === undefined || !Number.isFinite(v) ? '–' : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(d);
/** "median (min–max)" of one number over the rounds */
const spr = (s: Spread | undefined, d = 2) =>
  !s || s.rounds === 0 ? '–' : s.rounds === 1 ? num(s.median, d) : `${num(s.median, d)} (${num(s.min, d)}–${num(s.max, d)})`;
const ratio = (s: Spread | undefined) => (!s || s.rounds === 0 ? '' : ` ×${s.median.toFixed(2)}`);
const plus = (s: Spread | undefined, d = 2) => (!s || s.rounds === 0 ? '–' : `${s.median >= 0 ? '+' : ''}${num(s.median, d)}`);

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const conditions = (cells: Cell[]) => [...new Set(cells.map((c) => c.condition))];

function latencyMd(r: ScenarioResult): string {
  const parts: string[] = [];
  for (const cond of conditions(r.cells)) {
    const cells = r.cells.filter((c) => c.condition === cond);
    parts.push(
      `**${cond}** (ms from the intended send time; added = variant − direct in the same round; CPU = both proxies, ms per 1,000 requests, ×ratio to the baseline)\n`,
    );
    parts.push(
      table(
        ['variant', 'p50', 'p90', 'p99', 'p99.9', 'added p50 / p99', 'proxies CPU-ms/1k', 'achieved req/s', 'generator lag p99'],
        cells.map((c) => [
          label(c.variant),
          spr(c.metrics.p50),
          spr(c.metrics.p90),
          spr(c.metrics.p99),
          spr(c.metrics.p999),
          `${plus(c.added.p50)} / ${plus(c.added.p99)}`,
          `${spr(c.metrics.proxyCpuMsPer1k, 0)}${ratio(c.ratios.proxyCpuMsPer1k)}${c.versus ? ` vs ${c.versus}` : ''}`,
          num(c.metrics.achievedRps?.median, 0),
          num(c.metrics.lagP99?.median),
        ]),
      ),
    );
  }
  return parts.join('\n\n');
}

function saturationMd(r: ScenarioResult): string {
  const conds = conditions(r.cells);
  const variants = [...new Set(r.cells.map((c) => c.variant))];
  const cell = (v: string, cond: string) => r.cells.find((c) => c.variant === v && c.condition === cond);
  const rps = table(
    ['variant', ...conds],
    variants.map((v) => [
      label(v),
      ...conds.map((cond) => {
        const c = cell(v, cond);
        return c ? `${spr(c.metrics.rps, 0)}${ratio(c.ratios.rps)}` : '';
      }),
    ]),
  );
  const cpu = table(
    ['variant', ...conds],
    variants.map((v) => [
      label(v),
      ...conds.map((cond) => {
        const c = cell(v, cond);
        return c ? `${num(c.metrics.proxyCpuMsPer1k?.median, 0)}${ratio(c.ratios.proxyCpuMsPer1k)}` : '';
      }),
    ]),
  );
  return `req/s (2xx), median (min–max) over the rounds, ×ratio to the variant's baseline in the same round (nodemesh L4 → HAProxy TCP mode, L7 → HTTP mode, same node → across nodes, ECDSA → RSA):\n\n${rps}\n\nProxies' CPU-ms per 1,000 requests at saturation:\n\n${cpu}`;
}

function bulkMd(r: ScenarioResult): string {
  return table(
    ['variant', 'MB/s', 'ratio', 'proxies CPU-s per GB'],
    r.cells.map((c) => [
      label(c.variant),
      spr(c.metrics.mbPerSecond, 0),
      c.ratios.mbPerSecond ? `×${c.ratios.mbPerSecond.median.toFixed(2)} vs ${c.versus}` : '',
      spr(c.metrics.cpuSPerGB),
    ]),
  );
}

function captureMd(r: ScenarioResult): string {
  return table(
    ['path', 'connect p50 ms', 'connect p99 ms', 'first byte p50 ms', 'first byte p99 ms', 'added first byte p50 vs direct'],
    r.cells.map((c) => [
      c.variant,
      spr(c.metrics.connectP50, 3),
      spr(c.metrics.connectP99, 3),
      `${spr(c.metrics.firstByteP50, 3)}${c.ratios.firstByteP50 ? ` ×${c.ratios.firstByteP50.median.toFixed(2)} vs ${c.versus}` : ''}`,
      spr(c.metrics.firstByteP99, 3),
      plus(c.added.firstByteP50, 3),
    ]),
  );
}

function dataMd(r: ScenarioResult): string {
  const d = r.data as Record<string, unknown>;
  if (r.id === 'held-connections' && d.agents) {
    const agents = d.agents as Record<string, { rssBeforeMB: number; rssHeldMB: number; rssAfterMB: number; bytesPerConnection: number }>;
    return (
      `${num(d.held as number, 0)} of ${num(d.connections as number, 0)} connections held (${d.failed} failed), opened in ${num(d.openSeconds as number, 1)} s.\n\n` +
      table(
        ['agent', 'RSS before MB', 'RSS held MB', 'RSS after close MB', 'KiB per connection'],
        Object.entries(agents).map(([n, a]) => [
          n,
          num(a.rssBeforeMB, 1),
          num(a.rssHeldMB, 1),
          num(a.rssAfterMB, 1),
          num(a.bytesPerConnection / 1024, 1),
        ]),
      )
    );
  }
  if (r.id === 'pods' && d.agents) {
    const agents = d.agents as { pods: number; rssMB: number; heapUsedMB: number; peakRssMB?: number; idleCpuMsPerS?: number }[];
    const marginal = d.marginal as { from: number; to: number; rssBytesPerPod: number; heapBytesPerPod: number }[];
    return (
      `\`lab up\` with ${d.pods} pods took ${num(d.labUpSeconds as number, 0)} s, then ${num(d.certificatesSeconds as number, 0)} s until every pod's certificate was issued` +
      (d.settleSeconds === undefined
        ? '.\n\n'
        : d.settleSeconds === null
          ? '; RSS had not settled when read.\n\n'
          : `, then ${num(d.settleSeconds as number, 0)} s until RSS settled.\n\n`) +
      table(
        ['meshed pods on the node', 'agent RSS MB', 'peak RSS MB (VmHWM)', 'V8 heap used MB', 'idle CPU ms/s'],
        agents.map((a) => [
          String(a.pods),
          num(a.rssMB, 1),
          a.peakRssMB === undefined ? '–' : num(a.peakRssMB, 1),
          num(a.heapUsedMB, 1),
          a.idleCpuMsPerS === undefined ? '–' : num(a.idleCpuMsPerS, 1),
        ]),
      ) +
      '\n\n' +
      table(
        ['pods', 'RSS per pod KiB', 'heap per pod KiB'],
        marginal.map((m) => [`${m.from} → ${m.to}`, num(m.rssBytesPerPod / 1024, 1), num(m.heapBytesPerPod / 1024, 1)]),
      )
    );
  }
  if (r.id === 'control-plane' && d.convergenceMs) {
    const c = d.convergenceMs as { p50: number; p90: number; p99: number; max: number; n: number };
    const a = d.applyMs as { p50: number; p99: number };
    return table(
      ['number', 'value'],
      [
        [
          'scale',
          `${num(d.services as number, 0)} Services, ${num(d.endpoints as number, 0)} endpoints, ${d.agents} agents (${d.agentsAre})`,
        ],
        ['initial load (file written → all agents applied)', `${num(d.initialLoadSeconds as number, 1)} s`],
        [
          `convergence over ${c.n} changes, p50 / p90 / p99 / max`,
          `${num(c.p50, 0)} / ${num(c.p90, 0)} / ${num(c.p99, 0)} / ${num(c.max, 0)} ms`,
        ],
        ['an agent building its state from a snapshot, p50 / p99', `${num(a.p50, 1)} / ${num(a.p99, 1)} ms`],
        [
          'snapshot on the wire (protobuf, uncompressed)',
          `${num((d.snapshotBytes as number) / 2 ** 20, 2)} MiB (${num(d.snapshotBytes as number, 0)} bytes)`,
        ],
        ...Object.entries((d.pushes ?? {}) as Record<string, { count: number; bytes: number }>).map(([type, p]) => [
          `pushes of type ${type} (pilot_xds_config_size_bytes): count, mean size`,
          `${num(p.count, 0)}, ${num(p.bytes / Math.max(1, p.count), 0)} bytes`,
        ]),
      ],
    );
  }
  if (r.id === 'workers' && d.scaling) {
    type Run = { rps: number; cpuMsPer1k: number };
    const rounds = d.rounds as Record<string, Record<string, Record<number, Run>>>[];
    const n = d.workers as number;
    const scaling = d.scaling as Record<string, Record<string, number>>;
    const rows: string[][] = [];
    for (const mode of d.modes as string[])
      for (const v of Object.keys(scaling[mode] ?? {})) {
        const at = (w: number, k: keyof Run) => median(rounds.map((x) => x[mode]![v]![w]![k]));
        rows.push([
          mode === 'quota' ? `${d.share} CPU per worker` : "the machine's cores",
          v,
          num(at(1, 'rps'), 0),
          num(at(n, 'rps'), 0),
          num(at(1, 'cpuMsPer1k'), 0),
          num(at(n, 'cpuMsPer1k'), 0),
          num(scaling[mode]![v]!, 2),
        ]);
      }
    return table(
      [
        'CPU',
        'path',
        'req/s, 1 worker',
        `req/s, ${n} workers`,
        'CPU-ms/1k, 1',
        `CPU-ms/1k, ${n}`,
        `scaling (${n} ÷ ${n} × 1, median of rounds)`,
      ],
      rows,
    );
  }
  if (r.id === 'verify' && Array.isArray(d.evidence)) return (d.evidence as string[]).map((e) => `- ${e}`).join('\n');
  return '';
}

export function markdown(rep: RunReport): string {
  const m = rep.machine;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const out = [
    `# nodemesh benchmark, ${rep.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.hostname}`,
    '',
    ...rep.notes.map((n) => `> ${n}`),
    rep.notes.length ? '' : '',
    `${rep.mode === 'quick' ? 'Quick mode (--quick: every scenario briefly, to check the suite; the numbers mean little). ' : ''}` +
      `${m.cpus} × ${m.cpuModel}, ${m.memoryGB} GB, Linux ${m.kernel}, Node ${m.node}, ${m.haproxy}; commit ${m.commit}. ` +
      `Load average (1/5/15 min) ${load(rep.load.start)} at the start, ${load(rep.load.end)} at the end; ${Math.round(rep.seconds)} s in all. ` +
      'Medians over the rounds with their range in parentheses; every ratio is taken within a round, then its median.',
    '',
    rep.failures.length ? `**Did not run:**\n\n${rep.failures.map((f) => `- ${f}`).join('\n')}\n` : '',
    '## Targets (issue 15)',
    '',
    table(
      ['target', 'measured', 'met'],
      rep.targets.map((t) => [t.target, t.measured + (t.note ? ` — ${t.note}` : ''), t.met === null ? 'n/a' : t.met ? 'yes' : 'no']),
    ),
  ];
  for (const r of rep.scenarios) {
    out.push(
      '',
      `## ${r.title}`,
      '',
      `${r.method} (${Math.round(r.seconds)} s, load ${r.load.start[0]!.toFixed(2)} → ${r.load.end[0]!.toFixed(2)}${r.status === 'failed' ? `; **${r.errors.length} failure(s)**` : ''})`,
      '',
    );
    const body =
      r.id === 'latency'
        ? latencyMd(r)
        : r.id === 'saturation'
          ? saturationMd(r)
          : r.id === 'bulk'
            ? bulkMd(r)
            : r.id === 'capture'
              ? captureMd(r)
              : dataMd(r);
    if (body) out.push(body);
    for (const n of r.notes) out.push('', `Note: ${n}`);
    if (r.errors.length) out.push('', ...r.errors.map((e) => `- ✗ ${e.split('\n')[0]}`));
  }
  return out.join('\n') + '\n';
}

/** The charts: name → SVG document. */
export function charts(rep: RunReport): Record<string, string> {
  const sc = (id: string) => rep.scenarios.find((r) => r.id === id);
  const out: Record<string, string> = {};
  const caption = `nodemesh bench ${rep.startedAt.slice(0, 10)} on ${rep.machine.hostname} (${rep.mode}, load ${rep.load.start[0]!.toFixed(1)} on ${rep.machine.cpus} CPUs)`;
  const lat = sc('latency');
  const sat = sc('saturation');
  const at = (cells: Cell[] | undefined, cond: string) => (cells ?? []).filter((c) => c.condition === cond);
  const summary = [];
  const wrk16 = at(sat?.cells, 'HTTP/1.1 wrk c16');
  if (wrk16.length)
    summary.push(
      barChart({
        title: 'HTTP/1.1 req/s, wrk c16',
        unit: 'req/s',
        categories: wrk16.map((c) => c.variant),
        series: [{ name: 'median of rounds', values: wrk16.map((c) => c.metrics.rps?.median ?? null) }],
      }),
    );
  const l1k = at(lat?.cells, '1,000 req/s');
  if (l1k.length) {
    summary.push(
      barChart({
        title: 'Latency at 1,000 req/s (open loop)',
        unit: 'ms',
        categories: l1k.map((c) => c.variant),
        series: [
          { name: 'p50', values: l1k.map((c) => c.metrics.p50?.median ?? null) },
          { name: 'p99', values: l1k.map((c) => c.metrics.p99?.median ?? null) },
        ],
      }),
    );
    summary.push(
      barChart({
        title: 'Proxies CPU per 1,000 requests',
        unit: 'CPU-ms',
        categories: l1k.map((c) => c.variant),
        series: [{ name: 'both proxies, at 1,000 req/s', values: l1k.map((c) => c.metrics.proxyCpuMsPer1k?.median ?? null) }],
      }),
    );
  }
  if (summary.length) out.summary = svgDocument(summary, caption);
  if (lat?.cells.length) {
    const rates = conditions(lat.cells);
    const variants = [...new Set(lat.cells.map((c) => c.variant))];
    const series = (key: string) =>
      variants.map((v) => ({
        name: v,
        values: rates.map((r) => lat.cells.find((c) => c.variant === v && c.condition === r)?.metrics[key]?.median ?? null),
      }));
    out.latency = svgDocument(
      [
        lineChart({
          title: 'p50 latency by rate',
          unit: 'ms',
          x: rates.map((r) => r.replace(' req/s', '')),
          xLabel: 'req/s (open loop)',
          series: series('p50'),
          width: 460,
        }),
        lineChart({
          title: 'p99 latency by rate',
          unit: 'ms',
          x: rates.map((r) => r.replace(' req/s', '')),
          xLabel: 'req/s (open loop)',
          series: series('p99'),
          width: 460,
        }),
      ],
      caption,
    );
  }
  if (sat?.cells.length) {
    const conds = conditions(sat.cells);
    const variants = [...new Set(sat.cells.map((c) => c.variant))];
    out.saturation = svgDocument(
      [
        barChart({
          title: 'Saturation req/s',
          unit: 'req/s',
          categories: variants,
          series: conds.map((cond) => ({
            name: cond,
            values: variants.map((v) => sat.cells.find((c) => c.variant === v && c.condition === cond)?.metrics.rps?.median ?? null),
          })),
        }),
      ],
      caption,
    );
  }
  const bulk = sc('bulk');
  const cap = sc('capture');
  const tcp = [];
  if (bulk?.cells.length)
    tcp.push(
      barChart({
        title: 'Bulk TCP, one connection',
        unit: 'MB/s',
        categories: bulk.cells.map((c) => c.variant),
        series: [{ name: 'MB/s', values: bulk.cells.map((c) => c.metrics.mbPerSecond?.median ?? null) }],
      }),
    );
  if (cap?.cells.length)
    tcp.push(
      barChart({
        title: 'New connection to first byte',
        unit: 'ms',
        categories: cap.cells.map((c) => c.variant),
        series: [
          { name: 'p50', values: cap.cells.map((c) => c.metrics.firstByteP50?.median ?? null) },
          { name: 'p99', values: cap.cells.map((c) => c.metrics.firstByteP99?.median ?? null) },
        ],
      }),
    );
  if (tcp.length) out.tcp = svgDocument(tcp, caption);
  return out;
}

export const README_START = '<!-- bench:latest -->';
export const README_END = '<!-- /bench:latest -->';

/** Writes the run's files; returns their paths. */
export async function writeReport(rep: RunReport, dir: string, base: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const put = async (name: string, text: string) => {
    const f = path.join(dir, name);
    await writeFile(f, text);
    files.push(f);
  };
  await put(`${base}.json`, JSON.stringify(rep, null, 1) + '\n');
  await put(`${base}.md`, markdown(rep));
  for (const [name, svg] of Object.entries(charts(rep))) await put(`${base}-${name}.svg`, svg);
  return files;
}

/** Points README.md's performance section (between the markers) at this run's summary chart and tables. */
export async function pointReadme(readme: string, relDir: string, base: string, rep: RunReport): Promise<boolean> {
  const text = await readFile(readme, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) return false;
  const line = `![benchmark summary: req/s, latency at 1,000 req/s and CPU per request, by path](${relDir}/${base}-summary.svg)\n\nLatest run: [${base}](${relDir}/${base}.md) (${rep.mode}${rep.notes.length ? `; ${lowerFirst(rep.notes[0]!).replace(/\.$/, '')}` : ''}).`;
  await writeFile(readme, `${text.slice(0, start + README_START.length)}\n${line}\n${text.slice(end)}`);
  return true;
}

/** A sentence as a clause: its first letter lower-cased (a note in the README's parentheses). */
function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
