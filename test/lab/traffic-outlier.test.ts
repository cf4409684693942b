// Outlier detection in the lab, end to end: DestinationRule outlierDetection enforced by the
// client's node proxy against real backends. A pod answering 503 is ejected after N
// consecutive 5xx, comes back after baseEjectionTime, stays out twice as long after its
// second ejection; and no more than maxEjectionPercent of a Service's pods are ever out.
import test from 'ava';
import { labPerFile, type Lab } from '../helpers/lab-per-file.js';
import { canRunPrivileged } from '../helpers/privileged.js';
import { packagePath } from '../../common/paths.js';

const FIXTURE = packagePath('test', 'fixtures', 'traffic-outlier');
const CLIENT = packagePath('test', 'fixtures', 'traffic', 'client.js');
const LAB = 't-eject';

type Row = [at: number, status: number, pod: string, ms: number];

async function timeline(lab: Lab, url: string, durationMs: number, intervalMs: number): Promise<Row[]> {
  return JSON.parse(await lab.output('shop/client', ['node', CLIENT, 'timeline', url, String(durationMs), String(intervalMs)])) as Row[];
}

/**
 * The periods a pod received no request although it would have in rotation: from its last
 * request before a silence of more than `minGapMs` to its next one (or the end, open). A
 * silence counts only if the other pods kept being served through it (at least
 * `minOthers` requests): a pause of the whole machine (a loaded CI runner) is no ejection.
 */
function outPeriods(rows: Row[], pod: string, minGapMs: number, minOthers = 5): { from: number; to: number | undefined }[] {
  const at = rows.filter((r) => r[2] === pod).map((r) => r[0]);
  const end = rows[rows.length - 1]![0];
  const othersBetween = (from: number, to: number) => rows.filter((r) => r[2] !== pod && r[0] > from && r[0] < to).length;
  const out: { from: number; to: number | undefined }[] = [];
  for (let i = 0; i < at.length; i++) {
    const next = at[i + 1];
    const to = next ?? end;
    if (to - at[i]! > minGapMs && othersBetween(at[i]!, to) >= minOthers) out.push({ from: at[i]!, to: next });
  }
  return out;
}

if (canRunPrivileged('traffic outlier detection')) {
  const lab = labPerFile({ dir: FIXTURE, name: LAB });

  test.serial('ejected after 3 consecutive 5xx, back after baseEjectionTime (1 s), out twice as long the second time', async (t) => {
    // 8 s: both ejections (≤ 1.7 s and ≤ 2.7 s, with six failures around them) end well
    // inside it even when a loaded machine slows every request (at 5 s the second one's end
    // fell past the timeline once, under the suite-under-load run)
    const rows = await timeline(lab, 'http://pair.shop/', 8000, 20);
    t.true(rows.every(([, status, pod]) => (pod === 'pair-ok' ? status === 200 : status === 503)));
    const bad = rows.filter((r) => r[2] === 'pair-bad');
    t.is(bad.slice(0, 3).length, 3);
    t.true(rows.filter((r) => r[2] === 'pair-ok').length > 100, 'the healthy pod served throughout');
    const out = outPeriods(rows, 'pair-bad', 300);
    t.log(out.map((o) => `out for ${o.to === undefined ? 'the rest' : `${o.to - o.from} ms`}`).join('; '));
    t.true(out.length >= 2, `two ejections seen (${out.length})`);
    const [first, second] = out;
    // ejected at its 3rd 503; back at the first 500 ms sweep after 1 s, then the next request in turn
    t.true(first!.to! - first!.from >= 1000 && first!.to! - first!.from < 1700, `first ejection lasted ${first!.to! - first!.from} ms`);
    // failing again at once: 3 more 503s (the multiplier had no clean interval to decay)
    const between = bad.filter((r) => r[0] >= first!.to! && r[0] <= second!.from).length;
    t.is(between, 3, 'back for exactly three more failures');
    t.true(second!.to !== undefined, 'back after the second ejection too');
    t.true(second!.to! - second!.from >= 2000 && second!.to! - second!.from < 2700, `second ejection lasted ${second!.to! - second!.from} ms`);
  });

  test.serial('never more than maxEjectionPercent out: of three pods, two failing, only one is ejected', async (t) => {
    const rows = await timeline(lab, 'http://trio.shop/', 2000, 10);
    const last = rows[rows.length - 1]![0];
    const inLastSecond = (pod: string) => rows.filter((r) => r[2] === pod && r[0] > last - 1000).length;
    const bad = ['trio-bad1', 'trio-bad2'].map((p) => ({ pod: p, recent: inLastSecond(p), all: rows.filter((r) => r[2] === p).length }));
    t.log(bad.map((b) => `${b.pod}: ${b.all} requests, ${b.recent} in the last second`).join('; '));
    t.true(inLastSecond('trio-ok') > 20, 'the healthy pod serves');
    const ejected = bad.filter((b) => b.recent === 0);
    t.is(ejected.length, 1, 'one failing pod is out');
    t.is(ejected[0]!.all, 3, 'after exactly three 503s');
    t.true(bad.find((b) => b.recent > 0)!.recent > 20, 'the other failing pod still gets its share: a second ejection would pass 50%');
  });
}
