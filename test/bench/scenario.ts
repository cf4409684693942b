// One scenario's record in the results: what it measured (cells of variants × rounds, or
// its own data), how long it took, how busy the machine was, and what did not run. A
// scenario that throws is recorded as failed with its error; the suite goes on to the next
// one and fails at the end, naming what did not run.
import os from 'node:os';
import { failures, type Cell } from './rounds.js';

export interface ScenarioResult {
  id: string;
  title: string;
  /** how it measures, in a sentence or two (goes into the Markdown report) */
  method: string;
  status: 'ok' | 'failed';
  /** what did not run, one line each */
  errors: string[];
  seconds: number;
  /** os.loadavg() at its start and end */
  load: { start: number[]; end: number[] };
  cells: Cell[];
  data: Record<string, unknown>;
  notes: string[];
}

export interface ScenarioBody {
  cells: Cell[];
  data: Record<string, unknown>;
  notes: string[];
  /** errors besides the failed runs of the cells */
  errors: string[];
}

export const emptyBody = (): ScenarioBody => ({ cells: [], data: {}, notes: [], errors: [] });

export async function scenario(
  id: string,
  title: string,
  method: string,
  log: (m: string) => void,
  body: (out: ScenarioBody) => Promise<void>,
): Promise<ScenarioResult> {
  const t0 = performance.now();
  const start = os.loadavg();
  log(`▶ ${title}`);
  const out = emptyBody();
  try {
    await body(out);
  } catch (err) {
    out.errors.push(`${title}: ${(err as Error).message}`);
  }
  const errors = [...out.errors, ...failures(out.cells)];
  const seconds = (performance.now() - t0) / 1000;
  log(`  ${errors.length ? `FAILED (${errors.length})` : 'done'} in ${seconds.toFixed(0)} s, load ${os.loadavg()[0]!.toFixed(2)}`);
  for (const e of errors) log(`  ✗ ${e.split('\n')[0]}`);
  return {
    id,
    title,
    method,
    status: errors.length ? 'failed' : 'ok',
    errors,
    seconds,
    load: { start, end: os.loadavg() },
    cells: out.cells,
    data: out.data,
    notes: out.notes,
  };
}
