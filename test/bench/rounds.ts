// How a scenario measures its variants: in rounds, every variant once per round in an order
// rotated each round, so that a variant's numbers and its baseline's are taken minutes apart
// at most and under the same load on the machine; then per variant the median and range over
// the rounds of every number, and against its baseline (the same round's run) ratios and
// differences. A run that failed is kept as its error: the cell says so, the suite fails.
import os from 'node:os';
import { roundDifferences, roundOrder, roundRatios, spread, type Spread } from './stats.js';
import { VARIANTS, type VariantId } from './settings.js';

export interface Run {
  round: number;
  /** the load average (1 min) when the run started: how busy the machine was */
  load1: number;
  /** set when the run did not produce its numbers */
  error?: string;
  values: Record<string, number>;
}

export interface Cell {
  /** what was held fixed, e.g. "1,000 req/s" or "wrk c16" */
  condition: string;
  /** a VariantId, or a scenario's own path name (capture: direct, ebpf, iptables) */
  variant: string;
  runs: Run[];
  /** per number: median and range over the rounds that ran */
  metrics: Record<string, Spread>;
  /** per number: this variant ÷ its baseline, round by round (the baseline in `versus`) */
  ratios: Record<string, Spread>;
  /** per number: this variant − direct, round by round (added latency) */
  added: Record<string, Spread>;
  versus?: string;
}

export type Measure<V extends string> = (variant: V, round: number) => Promise<Record<string, number>>;

export interface RoundsOptions<V extends string> {
  condition: string;
  variants: V[];
  rounds: number;
  measure: Measure<V>;
  /** a variant's baseline for ratios (default: VARIANTS[v].versus) */
  versus?: (variant: V) => V | undefined;
  /** numbers compared with the baseline as ratios (req/s, CPU) */
  ratioOf?: string[];
  /** numbers compared with direct as differences (latency) */
  addedOf?: string[];
  log: (msg: string) => void;
}

/** Runs every variant once per round, rotated; returns one cell per variant. */
export async function inRounds<V extends string>(o: RoundsOptions<V>): Promise<Cell[]> {
  const runs = new Map<string, Run[]>(o.variants.map((v) => [v, []]));
  for (let r = 0; r < o.rounds; r++) {
    for (const v of roundOrder(o.variants, r)) {
      const run: Run = { round: r, load1: os.loadavg()[0]!, values: {} };
      try {
        run.values = await o.measure(v, r);
      } catch (err) {
        run.error = (err as Error).message;
        o.log(`  ${o.condition} ${v} round ${r + 1}: FAILED: ${run.error.split('\n')[0]}`);
      }
      runs.get(v)!.push(run);
    }
  }
  const versus = o.versus ?? ((v: V) => VARIANTS[v as unknown as VariantId]?.versus as V | undefined);
  return o.variants.map((v) => cellOf(o.condition, v, versus(v), runs, o.ratioOf ?? [], o.addedOf ?? []));
}

/** The run of each round (NaN where it failed or is missing) for one number. */
function byRound(runs: Run[], key: string, rounds: number): number[] {
  const out = new Array<number>(rounds).fill(NaN);
  for (const r of runs) if (!r.error && key in r.values) out[r.round] = r.values[key]!;
  return out;
}

function cellOf(
  condition: string,
  variant: string,
  versus: string | undefined,
  all: Map<string, Run[]>,
  ratioOf: string[],
  addedOf: string[],
): Cell {
  const runs = all.get(variant)!;
  const rounds = Math.max(0, ...[...all.values()].flatMap((rs) => rs.map((r) => r.round + 1)));
  const keys = new Set(runs.flatMap((r) => Object.keys(r.values)));
  const metrics: Record<string, Spread> = {};
  for (const k of keys) metrics[k] = spread(byRound(runs, k, rounds));
  const cell: Cell = { condition, variant, runs, metrics, ratios: {}, added: {} };
  if (versus && all.has(versus)) {
    cell.versus = versus;
    for (const k of ratioOf) if (keys.has(k)) cell.ratios[k] = roundRatios(byRound(runs, k, rounds), byRound(all.get(versus)!, k, rounds));
  }
  if (variant !== 'direct' && all.has('direct')) {
    for (const k of addedOf)
      if (keys.has(k)) cell.added[k] = roundDifferences(byRound(runs, k, rounds), byRound(all.get('direct')!, k, rounds));
  }
  return cell;
}

/** The errors of a scenario's cells, one line each (what did not run). */
export function failures(cells: Cell[]): string[] {
  return cells.flatMap((c) =>
    c.runs.filter((r) => r.error).map((r) => `${c.condition} / ${c.variant} / round ${r.round + 1}: ${r.error!.split('\n')[0]}`),
  );
}
