// The benchmark suite's SVG charts (test/bench/svg.ts): a well-formed document, bars as high
// as their values on the axis, a missing value drawn as "n/a" and never as a zero bar, lines
// broken where a point is missing, text escaped, and 1-2-5 axis ticks.
import test from 'ava';
import { barChart, escapeXml, lineChart, niceTicks, svgDocument } from '../bench/svg.js';

/** Every element opened is closed, in order (a well-formedness check without a parser). */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[0].startsWith('<?')) continue;
    if (m[3] === '/') continue;
    if (m[1] === '/') {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]!);
  }
  return stack.length === 0;
}

const rects = (svg: string) =>
  [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="[^"]+"><title>([^<]*)<\/title>/g)].map(
    (m) => ({ y: Number(m[2]), h: Number(m[4]), title: m[5]! }),
  );

test('bars stand on one baseline, as high as their values; a missing value is n/a, not zero', (t) => {
  const panel = barChart({
    title: 'req/s',
    unit: 'req/s',
    categories: ['direct', 'nm-l4', 'hap <tcp>'],
    series: [
      { name: 'c16', values: [12000, 6000, null] },
      { name: 'c64', values: [3000, NaN, 1500] },
    ],
  });
  const svg = svgDocument([panel], 'caption & more');
  t.true(svg.startsWith('<?xml'));
  t.true(balanced(svg), 'every element is closed');
  const bars = rects(svg);
  t.is(bars.length, 4, 'two values are missing: no bar for them');
  t.is((svg.match(/>n\/a</g) ?? []).length, 2);
  const base = bars[0]!.y + bars[0]!.h;
  for (const b of bars) t.true(Math.abs(b.y + b.h - base) < 0.2, 'one baseline');
  const h = (title: string) => bars.find((b) => b.title.startsWith(title))!.h;
  t.true(Math.abs(h('direct, c16') / h('nm-l4, c16') - 2) < 0.01, 'twice the value, twice the height');
  t.true(Math.abs(h('direct, c16') / h('direct, c64') - 4) < 0.01);
  t.true(svg.includes('hap &lt;tcp&gt;') && svg.includes('caption &amp; more'), 'text is escaped');
  t.false(svg.includes('hap <tcp>'));
});

test('a line breaks where a point is missing, and every point has its marker', (t) => {
  const svg = svgDocument([
    lineChart({
      title: 'p99',
      unit: 'ms',
      x: ['500', '1,000', '5,000'],
      xLabel: 'req/s',
      series: [
        { name: 'a', values: [1, null, 3] },
        { name: 'b', values: [1, 2, 4] },
      ],
    }),
  ]);
  t.true(balanced(svg));
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
  t.is(paths.length, 2);
  t.is((paths[0]!.match(/M/g) ?? []).length, 2, 'series a: two separate pieces');
  t.is((paths[0]!.match(/L/g) ?? []).length, 0);
  t.is((paths[1]!.match(/L/g) ?? []).length, 2, 'series b: one line through three points');
  t.is((svg.match(/<circle /g) ?? []).length, 5);
});

test('panels sit side by side in one document', (t) => {
  const p = barChart({ title: 'x', unit: 'u', categories: ['a'], series: [{ name: 's', values: [1] }], width: 300, height: 200 });
  const svg = svgDocument([p, p]);
  t.regex(svg, /<svg [^>]*width="600" height="200"/);
  t.regex(svg, /translate\(300 0\)/);
});

test('axis ticks step by 1, 2 or 5 times a power of ten and reach the maximum', (t) => {
  t.deepEqual(niceTicks(12500), [0, 5000, 10000, 15000]);
  t.deepEqual(niceTicks(0.8), [0, 0.2, 0.4, 0.6, 0.8]);
  t.deepEqual(niceTicks(0), [0, 1]);
  for (const max of [0.003, 1, 7, 99, 101, 3e6]) {
    const ticks = niceTicks(max);
    const step = ticks[1]! - ticks[0]!;
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    t.true(
      [1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9),
      `step ${step} for ${max}`,
    );
    t.true(ticks[ticks.length - 1]! >= max && ticks[ticks.length - 2]! < max);
  }
  t.is(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});
