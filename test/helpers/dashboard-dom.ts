// Reading the node dashboard's DOM (as headless Chromium dumps it): every figure carries
// data-field and data-value (agent/admin/dashboard.html).

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The data-value of the cell `field` in the table row whose attributes contain `row`. */
export function cellValue(dom: string, row: string, field: string): string | undefined {
  const tr = new RegExp(`<tr[^>]*${escape(row)}[^>]*>([\\s\\S]*?)</tr>`).exec(dom)?.[1];
  return tr && new RegExp(`data-field="${escape(field)}" data-value="([^"]*)"`).exec(tr)?.[1];
}

/** The data-value of a node-wide figure (a card). */
export function cardValue(dom: string, field: string): string | undefined {
  return new RegExp(`data-field="${escape(field)}" data-value="([^"]*)"`).exec(dom)?.[1];
}
