// A flame graph (Brendan Gregg's layout: the root at the bottom, each frame as wide as its
// share of the samples, callees above callers) of folded stacks, as one self-contained SVG
// with each frame's name and share in its tooltip. Frames under 0.1 % of the width are left
// out; names are coloured by kind: JavaScript (V8's JIT frames), the kernel, native code.
export function flameGraphSvg(stacks: Map<string, number>, title: string): string {
  interface Node {
    name: string;
    count: number;
    children: Map<string, Node>;
  }
  const root: Node = { name: 'all', count: 0, children: new Map() };
  for (const [stack, n] of stacks) {
    root.count += n;
    let at = root;
    for (const f of stack.split(';')) {
      let child = at.children.get(f);
      if (!child) at.children.set(f, (child = { name: f, count: 0, children: new Map() }));
      child.count += n;
      at = child;
    }
  }
  const width = 1200;
  const row = 16;
  const rects: string[] = [];
  let depth = 0;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const colour = (name: string) =>
    /^(JS:|LazyCompile:|Function:|Builtin:|Script:|InterpretedFunction:|BytecodeHandler:)/.test(name) || / node:| file:/.test(name)
      ? '#e0a030'
      : /^\[k\]|^(__|do_|sys_|tcp_|ip_|skb_|sock_|entry_|syscall|net_|inet_|ep_|x64_|bpf_|__x64)/.test(name)
        ? '#d05040'
        : '#c0c060';
  const place = (node: Node, x: number, level: number) => {
    const w = (node.count / Math.max(1, root.count)) * width;
    if (w < width / 1000) return;
    depth = Math.max(depth, level + 1);
    rects.push(
      `<g><title>${esc(node.name)} (${node.count} samples, ${((100 * node.count) / Math.max(1, root.count)).toFixed(2)} %)</title>` +
        `<rect x="${x.toFixed(2)}" y="LEVEL${level}" width="${Math.max(0, w - 0.5).toFixed(2)}" height="${row - 1}" fill="${colour(node.name)}"/>` +
        (w > 40
          ? `<text x="${(x + 3).toFixed(2)}" y="TEXT${level}" font-size="11">${esc(node.name.slice(0, Math.floor(w / 6.5)))}</text>`
          : '') +
        '</g>',
    );
    let cx = x;
    for (const child of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      place(child, cx, level + 1);
      cx += (child.count / Math.max(1, root.count)) * width;
    }
  };
  place(root, 0, 0);
  const height = (depth + 2) * row;
  const body = rects
    .join('\n')
    .replace(/y="LEVEL(\d+)"/g, (_, l: string) => `y="${height - (Number(l) + 1) * row}"`)
    .replace(/y="TEXT(\d+)"/g, (_, l: string) => `y="${height - (Number(l) + 1) * row + 11}"`);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + row}" font-family="monospace">\n` +
    `<text x="4" y="12" font-size="12">${esc(title)} — ${root.count} samples</text>\n<g transform="translate(0,${row})">\n${body}\n</g>\n</svg>\n`
  );
}
