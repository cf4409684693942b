// The agent gives freed native memory back to the system (agent/lifecycle/memory-trim.ts):
// jemalloc's purge when it is preloaded, else glibc's malloc_trim (datapath/socket-calls.ts),
// once a burst is over and each minute.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { hostHasJemalloc, JEMALLOC, JEMALLOC_CONF } from '../../deploy/lab/lab-agents.js';
import { MemoryTrimmer } from '../../agent/lifecycle/memory-trim.js';
import { FakeClock } from '../helpers/fake-clock.js';

/**
 * In a Node process of its own (the allocator is chosen at exec: LD_PRELOAD), 80 MB of native
 * (malloc'ed) buffers, one in 16 kept, so that what is freed lies between live allocations,
 * where free() never returns it; then mallocTrim. The process's allocator and RSS around it.
 */
function trimInChild(preload: string | undefined): {
  allocator: string;
  released: boolean;
  beforeKiB: number;
  afterKiB: number;
  kept: number;
} {
  const socketCalls = new URL('../../agent/datapath/socket-calls.js', import.meta.url).href;
  const script = `
    import { readFileSync } from 'node:fs';
    import { setTimeout as sleep } from 'node:timers/promises';
    import { mallocName, mallocTrim } from ${JSON.stringify(socketCalls)};
    const rssKiB = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
    const kept = [];
    let all = [];
    for (let i = 0; i < 20000; i++) {
      const b = Buffer.allocUnsafeSlow(4000).fill(1);
      all.push(b);
      if (i % 16 === 0) kept.push(b);
    }
    all = undefined;
    // the buffers' memory is freed once the garbage collector finalizes them, off the main thread
    gc();
    await sleep(100);
    gc();
    const beforeKiB = rssKiB();
    const released = mallocTrim();
    const afterKiB = rssKiB();
    console.log(JSON.stringify({ allocator: mallocName(), released, beforeKiB, afterKiB, kept: kept.length }));
  `;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.MALLOC_CONF;
  if (preload) Object.assign(env, { LD_PRELOAD: preload, MALLOC_CONF: JEMALLOC_CONF });
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as ReturnType<typeof trimInChild>;
}

test("mallocTrim on glibc's malloc returns the free pages between live native allocations to the system", (t) => {
  const r = trimInChild(undefined);
  t.is(r.allocator, 'glibc');
  t.true(r.released, 'malloc_trim released nothing');
  t.true(r.beforeKiB - r.afterKiB > 20 * 1024, `RSS went from ${r.beforeKiB} to ${r.afterKiB} KiB: less than 20 MB came back`);
  t.is(r.kept, 1250); // what stayed live is still there
});

test('mallocTrim on jemalloc (preloaded with its settings, as the DaemonSet runs the agent) purges its free pages to the system', (t) => {
  // scripts/bootstrap.sh installs libjemalloc2; only a host set up otherwise lacks it, never CI
  if (!hostHasJemalloc() && process.env.CI !== 'true') {
    t.log(`${JEMALLOC} is not installed here: nothing to preload`);
    t.is(trimInChild(undefined).allocator, 'glibc');
    return;
  }
  const r = trimInChild(JEMALLOC);
  t.is(r.allocator, 'jemalloc');
  t.true(r.released, 'the purge failed');
  t.true(r.beforeKiB - r.afterKiB > 20 * 1024, `RSS went from ${r.beforeKiB} to ${r.afterKiB} KiB: less than 20 MB came back`);
  t.is(r.kept, 1250);
});

/**
 * In a Node process of its own with jemalloc and the agent's settings: 20,000 buffers of
 * `size` bytes (Buffer.allocUnsafeSlow: malloc'ed, as Node's socket, TLS and HTTP/2 read
 * buffers are), each written whole and dropped 500 at a time, so that V8's ArrayBuffer sweeper
 * frees them in bursts, as it frees a proxy's read buffers. The page faults the process took
 * over the second half (the first grows the heap), per buffer, and whether it ran on
 * jemalloc. With --single-threaded-gc the sweeper frees on the main thread: in the agent it
 * is a background thread, but one that lags on a busy machine (CI runs lab tests beside this
 * one) lets the live set grow and fault in new pages that are no reuse failure (2.07 per 64
 * KiB buffer in one CI run). Single-threaded, jemalloc's default fit still faults 4.4–8.0
 * times per buffer of 16, 32 or 64 KiB here, the agent's settings 0.001–0.002.
 */
function faultsPerBufferInChild(size: number): { jemalloc: boolean; perBuffer: number } {
  const script = `
    import { readFileSync } from 'node:fs';
    const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
    let batch = [];
    let before = 0;
    for (let i = 0; i < 20000; i++) {
      if (i === 10000) before = minflt();
      batch.push(Buffer.allocUnsafeSlow(${size}).fill(1));
      if (batch.length === 500) batch = [];
    }
    const jemalloc = readFileSync('/proc/self/maps', 'utf8').includes('libjemalloc');
    console.log(JSON.stringify({ jemalloc, perBuffer: (minflt() - before) / 10000 }));
  `;
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: JEMALLOC, MALLOC_CONF: JEMALLOC_CONF };
  const out = execFileSync(process.execPath, ['--single-threaded-gc', '--input-type=module', '-e', script], {
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as { jemalloc: boolean; perBuffer: number };
}

// Freed bursts coalesce into extents of megabytes, and jemalloc by default reuses an extent only
// for a request at least 1/64 of its size: each new 16 KiB buffer then came from fresh pages
// (about one page fault per 4 KiB written, while the freed ones were purged), which halved the
// L4 path's bulk throughput (ARCHITECTURE.md, "Agent memory"). lg_extent_max_active_fit lifts that.
test("jemalloc with the agent's settings reuses freed read-buffer-sized memory instead of faulting in fresh pages", (t) => {
  if (!hostHasJemalloc() && process.env.CI !== 'true') {
    t.log(`${JEMALLOC} is not installed here: nothing to preload`);
    t.false(hostHasJemalloc());
    return;
  }
  for (const size of [16 * 1024, 64 * 1024]) {
    const { jemalloc, perBuffer } = faultsPerBufferInChild(size);
    t.true(jemalloc, 'the child did not run on jemalloc');
    t.log(`${size / 1024} KiB buffers: ${perBuffer.toFixed(3)} page faults each`);
    // fresh pages would be 4 (16 KiB) and 16 (64 KiB) faults per buffer
    t.true(perBuffer < 0.5, `${size / 1024} KiB buffers took ${perBuffer.toFixed(2)} page faults each`);
  }
});

test('a poke trims once the burst is over: after quietMs without another poke, not before', (t) => {
  const clock = new FakeClock();
  let trims = 0;
  const m = new MemoryTrimmer({ trim: () => (trims++, true), quietMs: 2000, intervalMs: 0, clock });
  m.poke();
  clock.advance(1500);
  m.poke(); // still busy: the wait starts over
  clock.advance(1500);
  t.is(trims, 0);
  clock.advance(500);
  t.is(trims, 1);
  clock.advance(60_000);
  t.is(trims, 1, 'one burst, one trim');
  t.deepEqual(m.counts, { trims: 1, released: 1 });
  m.close();
});

test('without pokes it trims every intervalMs, and nothing after close', (t) => {
  const clock = new FakeClock();
  let trims = 0;
  const m = new MemoryTrimmer({ trim: () => (trims++, false), intervalMs: 60_000, clock });
  clock.advance(180_000);
  t.is(trims, 3);
  t.deepEqual(m.counts, { trims: 3, released: 0 });
  m.poke();
  m.close();
  clock.advance(180_000);
  t.is(trims, 3);
  t.is(clock.timers(), 0, 'close cancels its timers');
});

test('a trim that throws is logged once, not thrown, and not tried again: the agent goes on', (t) => {
  const clock = new FakeClock();
  let tries = 0;
  const m = new MemoryTrimmer({
    trim: () => {
      tries++;
      throw new Error('no malloc_trim here');
    },
    intervalMs: 1000,
    clock,
  });
  t.notThrows(() => clock.advance(3000));
  m.poke();
  clock.advance(3000);
  t.is(tries, 1);
  t.deepEqual(m.counts, { trims: 0, released: 0 });
  t.is(clock.timers(), 0);
});

test('a slow trim doubles the wait before the next periodic one (up to 10 min); a quick one brings it back', (t) => {
  const clock = new FakeClock();
  let took = 30; // ms each trim takes, as `now` sees it
  let at = 0;
  const m = new MemoryTrimmer({
    trim: () => ((at += took), true),
    intervalMs: 60_000,
    slowMs: 10,
    clock,
    now: () => at,
  });
  clock.advance(60_000);
  t.is(m.counts.trims, 1);
  t.is(m.intervalMs, 120_000);
  clock.advance(119_999);
  t.is(m.counts.trims, 1, 'the next periodic trim waits the doubled interval');
  clock.advance(1);
  t.is(m.counts.trims, 2);
  t.is(m.intervalMs, 240_000);
  clock.advance(240_000 + 480_000 + 600_000);
  t.is(m.intervalMs, 600_000, 'never more than 10 minutes');
  took = 1;
  clock.advance(600_000);
  t.is(m.intervalMs, 60_000);
  m.close();
});
