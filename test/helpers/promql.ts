// What a dashboard's PromQL reads and what a scrape exports, by metric name: enough of
// PromQL's grammar to find the metric names of an expression (selectors, functions,
// aggregations with by/without, binary operators with on/ignoring/group_*, ranges, offsets,
// Grafana's $variables and label_values(metric, label)), and the names an exposition
// defines (its # TYPE lines, with a histogram's _bucket/_sum/_count and a summary's
// _sum/_count).

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

/** The metric names an expression selects. */
export function promqlMetricNames(expr: string): Set<string> {
  const names = new Set<string>();
  // Grafana's label_values(metric, label) / label_values(label) in variable queries
  let e = expr.replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,[^)]*\)/g, (_, m: string) => (names.add(m), ' '));
  e = e
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings (quantile labels, label_replace arguments)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // grouping label lists
    .replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, ' ') // Grafana variables
    .replace(/\boffset\s+\S+/g, ' ');
  for (const m of e.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    const [, id, call] = m;
    if (call || KEYWORDS.has(id!.toLowerCase())) continue;
    const before = e[m.index! - 1];
    if (before && /[0-9.]/.test(before)) continue; // a number's exponent or unit (1e3)
    names.add(id!);
  }
  return names;
}

/** Every PromQL expression of a Grafana dashboard: panels' (and rows' panels') targets, and query variables. */
export function grafanaExpressions(dashboard: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.expr === 'string') out.push(o.expr);
      if (o.type === 'query' && o.query !== undefined) {
        const q = typeof o.query === 'string' ? o.query : (o.query as { query?: unknown }).query;
        if (typeof q === 'string') out.push(q);
      }
      for (const [k, x] of Object.entries(o)) if (k !== 'query') walk(x);
    }
  };
  walk(dashboard);
  return out;
}

/** The metric names an exposition defines. */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (m) {
      const [, name, type] = m;
      names.add(name!);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (s) names.add(s[1]!);
  }
  return names;
}
