// The benchmark suite's arithmetic (test/bench/stats.ts, schedule.ts, http1-responses.ts and
// the output parsers of load-tools.ts): percentiles by nearest rank against a reference, the
// rounds' medians, spreads and same-round ratios, the open-loop schedule's due counts, and
// HTTP/1.1 responses read however the bytes are cut. The suite itself is not a test.
import test from 'ava';
import fc from 'fast-check';
import { holds } from '../helpers/property-holds.js';
import { median, percentile, roundDifferences, roundOrder, roundRatios, sorted, spread, summarize } from '../bench/stats.js';
import { OpenLoopSchedule } from '../bench/schedule.js';
import { Http1Responses } from '../bench/http1-responses.js';
import { parseH2load, parseWrk } from '../bench/load-tools.js';
import { evaluateTargets } from '../bench/targets.js';
import type { Cell } from '../bench/rounds.js';
import type { ScenarioResult } from '../bench/scenario.js';
import type { Spread } from '../bench/stats.js';

test('percentile is the nearest rank: the smallest sample with at least p % at or below it', (t) => {
  holds(
    t,
    fc.property(
      fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 300 }),
      fc.double({ min: 0, max: 100, noNaN: true }),
      (xs, p) => {
        const s = sorted(xs);
        const v = percentile(s, p);
        const atOrBelow = xs.filter((x) => x <= v).length;
        // at least p % at or below it, and no smaller sample has that
        if (atOrBelow < (p / 100) * xs.length - 1e-6) return false;
        const smaller = xs.filter((x) => x < v);
        return smaller.length < (p / 100) * xs.length + 1e-6 || p === 0;
      },
    ),
  );
});

test('percentiles of 1..1000 are the textbook ones; p99.9 of 1,000 samples is the 999th', (t) => {
  const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i); // unsorted on purpose
  const s = summarize(xs);
  t.deepEqual(s, { n: 1000, p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 });
  t.true(Number.isNaN(percentile(new Float64Array(0), 50)));
  t.is(percentile(sorted([7]), 99.9), 7);
});

test('median, spread and the same-round ratios and differences', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([NaN, 5, Infinity, 1]), 3, 'non-finite rounds (failed runs) are left out');
  t.true(Number.isNaN(median([])));
  t.deepEqual(spread([10, 12, 11]), { median: 11, min: 10, max: 12, relative: 2 / 11, rounds: 3 });
  // round 2 is slow for both: the ratio taken within each round stays 0.5
  const a = [100, 50, 100];
  const b = [200, 100, 200];
  t.is(roundRatios(a, b).median, 0.5);
  t.is(roundRatios(a, b).relative, 0);
  t.is(roundRatios([1, NaN, 3], [2, 2, 0]).rounds, 1, 'a failed run or a zero baseline drops only that round');
  t.deepEqual(roundDifferences([5, 7, 6], [1, 2, 3]), { median: 4, min: 3, max: 5, relative: 0.5, rounds: 3 });
});

test('every variant runs once per round, and no variant always comes first', (t) => {
  const vs = ['a', 'b', 'c'];
  const orders = [0, 1, 2].map((r) => roundOrder(vs, r));
  for (const o of orders) t.deepEqual([...o].sort(), vs);
  t.deepEqual(new Set(orders.map((o) => o[0])), new Set(vs));
  t.deepEqual(roundOrder([], 3), []);
});

test('the open-loop schedule: request i is due exactly from its intended time on', (t) => {
  holds(
    t,
    fc.property(
      fc.integer({ min: 1, max: 20_000 }),
      fc.double({ min: 0.01, max: 30, noNaN: true }),
      fc.nat({ max: 1e12 }),
      fc.nat(),
      (rate, seconds, start, k) => {
        const s = new OpenLoopSchedule(rate, seconds, start);
        const i = k % s.total;
        const at = s.intendedNs(i);
        // due from its own time on, not one nanosecond before
        return s.dueAt(at) >= i + 1 && s.dueAt(at - 1) <= i && s.dueAt(s.endNs) === s.total && s.dueAt(start - 1) === 0;
      },
    ),
  );
  const s = new OpenLoopSchedule(1000, 2, 5e9);
  t.is(s.total, 2000);
  t.is(s.intendedNs(1), 5e9 + 1e6, '1 ms apart at 1,000 req/s');
  t.is(s.dueAt(5e9 + 1e9), 1001, 'a second in, 1,001 requests are due (0 … 1,000)');
  t.is(s.dueAt(1e15), 2000, 'never more than the schedule holds');
  t.is(s.nextAfter(5e9 + 1), 5e9 + 1e6);
  t.is(s.nextAfter(s.endNs), undefined);
  t.throws(() => new OpenLoopSchedule(0, 1, 0), { instanceOf: RangeError });
});

const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello',
  'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye',
];

test('HTTP/1.1 responses are read whole however the bytes are cut, Content-Length and chunked', (t) => {
  const wire = Buffer.from(RESPONSES.join(''));
  holds(
    t,
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: wire.length - 1 }), { maxLength: 20 }), (cuts) => {
      const statuses: number[] = [];
      const r = new Http1Responses((s) => statuses.push(s));
      let from = 0;
      for (const c of [...cuts].sort((a, b) => a - b)) {
        r.push(wire.subarray(from, c));
        from = c;
      }
      r.push(wire.subarray(from));
      return statuses.join(',') === '200,503,200,204,200' && r.closeAfter;
    }),
  );
  const r = new Http1Responses(() => {});
  t.throws(() => r.push(Buffer.from('SSH-2.0-x\r\n\r\n')), { message: /not an HTTP\/1.1 status line/ });
  t.throws(() => new Http1Responses(() => {}).push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), {
    message: /neither Content-Length nor chunked/,
  });
});

test("wrk's and h2load's summaries are read into rate, errors and latency", (t) => {
  const wrkOut = `Running 2s test @ http://10.96.0.10:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms  350.12us   9.80ms   90.00%
  Latency Distribution
     50%    1.10ms
     75%    1.30ms
     90%    1.60ms
     99%  850.00us
  25000 requests in 2.00s, 28.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  12500.00
Transfer/sec:     14.00MB
`;
  t.deepEqual(parseWrk(wrkOut), { rps: 12500, ok: 24993, errors: 10, p50Ms: 1.1, p99Ms: 0.85 });
  const h2 = `finished in 2.00s, 9000.50 req/s, 10.00MB/s
requests: 18001 total, 18017 started, 18001 done, 17990 succeeded, 11 failed, 0 errored, 0 timeout
status codes: 17990 2xx, 0 3xx, 0 4xx, 11 5xx
traffic: 20.00MB (20971520) total, 500.00KB (512000) headers (space savings 90.00%), 17.57MB (18421760) data
                     min         max         mean         sd        +/- sd
time for request:      150us     12.50ms      1.75ms       500us    80.00%
`;
  const r = parseH2load(h2);
  t.is(r.ok, 17990);
  t.is(r.rps, 17990 / 2);
  t.is(r.errors, 22, 'the 11 failed requests and their 11 5xx answers');
  t.is(r.p99Ms, 12.5, 'h2load prints no percentiles: its max stands in');
  t.throws(() => parseWrk('connection refused'), { message: /wrk printed no rate/ });
});

test("the workers scenario's CPU quota finds the v1 hierarchy carrying the cpu controller, not cpuacct, cpuset or the unified one", async (t) => {
  const { cpuV1Root } = await import('../bench/cpu-quota.js');
  const mounts = [
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0',
    'cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0',
    'cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0',
    'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0',
  ].join('\n');
  t.is(await cpuV1Root(mounts), '/sys/fs/cgroup/cpu,cpuacct');
  t.is(await cpuV1Root('cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n'), undefined);
});

test("the suite's temporary directories: a signal's cleanup removes those still there, and a killed run's are removed at the next start — not the logs a failed pods lab keeps", async (t) => {
  const { existsSync, mkdirSync, mkdtempSync, rmSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { benchTempDir, removeBenchTempDir, removeBenchTempDirs, removeStaleBenchTempDirs } = await import('../bench/lab-exec.js');
  const a = await benchTempDir();
  const b = await benchTempDir('pods-');
  t.regex(path.basename(b), /^nodemesh-bench-pods-/);
  await removeBenchTempDir(a);
  t.false(existsSync(a));
  await removeBenchTempDirs();
  t.false(existsSync(b), 'the one its user had not removed');

  // in a directory of its own: a bench running meanwhile keeps its directories in the real one
  const parent = mkdtempSync(path.join(os.tmpdir(), 'bench-stale-test-'));
  const killed = path.join(parent, 'nodemesh-bench-cp-Ab12Cd');
  const kept = path.join(parent, 'nodemesh-bench-pods-logs-1796634000000');
  for (const d of [killed, kept]) mkdirSync(d);
  try {
    t.deepEqual(await removeStaleBenchTempDirs(parent), ['nodemesh-bench-cp-Ab12Cd']);
    t.false(existsSync(killed));
    t.true(existsSync(kept), 'the kept logs stay');
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('the req/s targets name their rounds and how far the two HAProxy pairs read apart in the same rounds', (t) => {
  const sp = (median: number, min: number, max: number): Spread => ({ median, min, max, relative: (max - min) / median, rounds: 3 });
  const cell = (variant: string, ratio?: Spread): Cell => ({
    condition: 'HTTP/1.1 wrk c16',
    variant,
    runs: [],
    metrics: {},
    ratios: ratio ? { rps: ratio } : {},
    added: {},
  });
  const saturation: ScenarioResult = {
    id: 'saturation',
    title: 'Saturation throughput',
    method: '',
    status: 'ok',
    errors: [],
    seconds: 1,
    load: { start: [], end: [] },
    cells: [
      cell('nm-l4', sp(0.84, 0.77, 0.94)),
      cell('nm-l7', sp(0.81, 0.7, 0.9)),
      cell('hap-tcp-ecdsa', sp(1.08, 0.79, 1.18)),
      cell('hap-http-ecdsa', sp(0.95, 0.93, 1.15)),
    ],
    data: {},
    notes: [],
  };
  const targets = evaluateTargets([saturation]);
  const l4 = targets.find((r) => r.target.startsWith('L4 across nodes'))!;
  t.false(l4.met);
  t.is(
    l4.measured,
    '0.84× (rounds 0.77–0.94), wrk c16, median of round ratios; the HAProxy TCP pair with ECDSA read 0.79–1.18× the one with RSA in the same rounds',
  );
  const l7 = targets.find((r) => r.target.startsWith('L7: req/s'))!;
  t.true(l7.met);
  t.is(
    l7.measured,
    '0.81× (rounds 0.70–0.90), wrk c16; the HAProxy HTTP pair with ECDSA read 0.93–1.15× the one with RSA in the same rounds',
  );
  // without the ECDSA pairs the ratio stands alone
  const alone = evaluateTargets([{ ...saturation, cells: [cell('nm-l4', sp(1.01, 0.99, 1.02))] }]).find((r) =>
    r.target.startsWith('L4 across'),
  )!;
  t.true(alone.met);
  t.is(alone.measured, '1.01× (rounds 0.99–1.02), wrk c16, median of round ratios');
});
