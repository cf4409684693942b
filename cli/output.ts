// How commands print: data as JSON or YAML for scripts (`-o json|yaml`), aligned tables for
// people, colour only when stdout is a terminal (and NO_COLOR is unset, as no-color.org asks).
import { stringify as yamlStringify } from 'yaml';
import type { OutputFormat } from './command-table.js';

export function printData(out: NodeJS.WritableStream, format: OutputFormat, data: unknown, human: () => string): void {
  if (format === 'json') out.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (format === 'yaml') out.write(yamlStringify(data));
  else out.write(human());
}

/** Rows of cells → aligned columns (the last column is not padded). */
export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const n = rows.reduce((m, r) => Math.max(m, r.length), 0);
  // a fold, not Math.max(...rows): a spread passes every row as an argument
  const widths = Array.from({ length: n }, (_, i) => rows.reduce((w, row) => Math.max(w, visibleLength(row[i] ?? '')), 0));
  return `${rows.map((row) => row.map((cell, i) => (i < row.length - 1 ? cell + ' '.repeat(widths[i]! - visibleLength(cell)) : cell)).join('  ').trimEnd()).join('\n')}\n`;
}

function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[[0-9;]*m/g, '').length;
}

export function colours(out: NodeJS.WritableStream): { red(s: string): string; green(s: string): string; yellow(s: string): string; bold(s: string): string } {
  const on = (out as NodeJS.WriteStream).isTTY === true && !process.env.NO_COLOR;
  const wrap = (code: number) => (s: string) => (on ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { red: wrap(31), green: wrap(32), yellow: wrap(33), bold: wrap(1) };
}
