// Charts of a benchmark run as plain SVG, written by hand (no chart package): grouped bars
// (a value per category and series) and lines (a value per x and series), and panels side by
// side. Missing values (a variant that did not run) are drawn as "n/a", never as zero.
// Pure; test/unit/bench-svg.test.ts checks the geometry and the escaping.

export interface Series {
  name: string;
  /** one per category (bars) or per x (lines); null or NaN = not measured */
  values: (number | null)[];
}

export interface BarChartSpec {
  title: string;
  /** what the y axis counts, e.g. "req/s" or "ms" */
  unit: string;
  categories: string[];
  series: Series[];
  width?: number;
  height?: number;
}

export interface LineChartSpec {
  title: string;
  unit: string;
  /** the x positions' labels (equally spaced), e.g. ["500", "1,000", "5,000"] */
  x: string[];
  xLabel: string;
  series: Series[];
  width?: number;
  height?: number;
}

/** A chart before it is wrapped in an <svg> element: its size and its elements. */
export interface Panel {
  width: number;
  height: number;
  body: string;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const FONT = 'font-family="system-ui, sans-serif"';
// bottom: room for the rotated category labels; the legend's rows come on top of it
const M = { top: 34, right: 12, bottom: 66, left: 58 };

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return String(Math.round(v));
  if (a >= 1) return String(+v.toFixed(2));
  return String(+v.toPrecision(2));
}

const measured = (v: number | null | undefined): v is number => v !== null && v !== undefined && Number.isFinite(v);

/**
 * Axis ticks from 0 to at least `max`, on a 1-2-5 step with about `count` intervals; the last
 * tick is the axis' top. max ≤ 0 (nothing measured) gives one interval of 1.
 */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = 0; ; v += step) {
    const t = +v.toPrecision(12);
    ticks.push(t);
    if (t >= max) break;
  }
  return ticks;
}

/** Legend entries laid out in rows that fit `width`: [x, row] per series. */
function legendLayout(series: Series[], width: number): { at: [number, number][]; rows: number } {
  const at: [number, number][] = [];
  let x = M.left;
  let row = 0;
  for (const s of series) {
    const w = 18 + s.name.length * 6;
    if (x + w > width - M.right && x > M.left) {
      x = M.left;
      row++;
    }
    at.push([x, row]);
    x += w;
  }
  return { at, rows: series.length ? row + 1 : 0 };
}

/** The frame shared by both kinds: title, y grid and labels, legend. Returns the plot area. */
function frame(
  title: string,
  unit: string,
  width: number,
  height: number,
  ticks: number[],
  series: Series[],
): { parts: string[]; plot: { x: number; y: number; w: number; h: number }; y: (v: number) => number } {
  const legend = legendLayout(series, width);
  const plot = { x: M.left, y: M.top, w: width - M.left - M.right, h: height - M.top - M.bottom - 14 * legend.rows };
  const top = ticks[ticks.length - 1]!;
  const y = (v: number) => plot.y + plot.h - (Math.max(0, v) / top) * plot.h;
  const parts = [
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600" ${FONT}>${escapeXml(title)}</text>`,
  ];
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${ty}" y2="${ty}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${plot.x - 4}" y="${ty}" dy="0.32em" text-anchor="end" font-size="10" ${FONT}>${fmt(t)}</text>`);
  }
  parts.push(
    `<text transform="translate(12 ${plot.y + plot.h / 2}) rotate(-90)" text-anchor="middle" font-size="10" ${FONT}>${escapeXml(unit)}</text>`,
  );
  parts.push(`<line x1="${plot.x}" x2="${plot.x}" y1="${plot.y}" y2="${plot.y + plot.h}" stroke="#888"/>`);
  series.forEach((s, i) => {
    const [lx, row] = legend.at[i]!;
    const ly = height - 8 - 14 * (legend.rows - 1 - row);
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`);
    parts.push(`<text x="${lx + 13}" y="${ly}" font-size="10" ${FONT}>${escapeXml(s.name)}</text>`);
  });
  return { parts, plot, y };
}

export function barChart(spec: BarChartSpec): Panel {
  const width = spec.width ?? Math.max(360, 90 + spec.categories.length * (14 * Math.max(1, spec.series.length) + 22));
  const height = spec.height ?? 300;
  const max = Math.max(0, ...spec.series.flatMap((s) => s.values.filter(measured)));
  const ticks = niceTicks(max);
  const { parts, plot, y } = frame(spec.title, spec.unit, width, height, ticks, spec.series);
  const groupW = plot.w / Math.max(1, spec.categories.length);
  const barW = Math.max(2, Math.min(24, (groupW * 0.8) / Math.max(1, spec.series.length)));
  spec.categories.forEach((cat, c) => {
    const gx = plot.x + c * groupW + (groupW - barW * spec.series.length) / 2;
    spec.series.forEach((s, i) => {
      const v = s.values[c];
      const x = gx + i * barW;
      if (!measured(v)) {
        parts.push(
          `<text x="${(x + barW / 2).toFixed(1)}" y="${plot.y + plot.h - 3}" text-anchor="middle" font-size="7" fill="#999" ${FONT}>n/a</text>`,
        );
        return;
      }
      const top = y(v);
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(plot.y + plot.h - top).toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(`${cat}, ${s.name}: ${fmt(v)} ${spec.unit}`)}</title></rect>`,
      );
    });
    const cx = plot.x + (c + 0.5) * groupW;
    // rotated to end under their bar group: long names run down and left, inside the panel
    parts.push(
      `<text transform="translate(${cx.toFixed(1)} ${plot.y + plot.h + 12}) rotate(-35)" text-anchor="end" font-size="10" ${FONT}>${escapeXml(cat)}</text>`,
    );
  });
  parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${plot.y + plot.h}" y2="${plot.y + plot.h}" stroke="#888"/>`);
  return { width, height, body: parts.join('\n') };
}

export function lineChart(spec: LineChartSpec): Panel {
  const width = spec.width ?? 420;
  const height = spec.height ?? 300;
  const max = Math.max(0, ...spec.series.flatMap((s) => s.values.filter(measured)));
  const ticks = niceTicks(max);
  const { parts, plot, y } = frame(spec.title, spec.unit, width, height, ticks, spec.series);
  const n = spec.x.length;
  const x = (i: number) => plot.x + (n === 1 ? plot.w / 2 : 20 + (i * (plot.w - 40)) / (n - 1));
  spec.x.forEach((label, i) =>
    parts.push(
      `<text x="${x(i).toFixed(1)}" y="${plot.y + plot.h + 14}" text-anchor="middle" font-size="10" ${FONT}>${escapeXml(label)}</text>`,
    ),
  );
  parts.push(
    `<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 30}" text-anchor="middle" font-size="10" ${FONT}>${escapeXml(spec.xLabel)}</text>`,
  );
  spec.series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    // a gap in the data breaks the line: an unmeasured point is not interpolated
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (!measured(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = true;
      parts.push(
        `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${color}"><title>${escapeXml(`${s.name}, ${spec.x[i]}: ${fmt(v)} ${spec.unit}`)}</title></circle>`,
      );
    });
    if (d) parts.push(`<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
  });
  parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${plot.y + plot.h}" y2="${plot.y + plot.h}" stroke="#888"/>`);
  return { width, height, body: parts.join('\n') };
}

/** Panels side by side under one caption, as a complete SVG document. */
export function svgDocument(panels: Panel[], caption?: string): string {
  const capH = caption ? 22 : 0;
  const width = panels.reduce((w, p) => w + p.width, 0);
  const height = Math.max(...panels.map((p) => p.height)) + capH;
  let x = 0;
  const groups = panels.map((p) => {
    const g = `<g transform="translate(${x} ${capH})">\n${p.body}\n</g>`;
    x += p.width;
    return g;
  });
  const cap = caption
    ? `<rect width="${width}" height="${capH}" fill="#fff"/><text x="8" y="15" font-size="11" fill="#555" ${FONT}>${escapeXml(caption)}</text>\n`
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n${cap}${groups.join('\n')}\n</svg>\n`;
}
