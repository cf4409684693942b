// An idle agent must stay idle: the process metrics every agent and worker registers
// (common/process-metrics.ts) include an event-loop delay histogram, whose sampling timer
// wakes the process. prom-client's default samples every 10 ms, 100 wake-ups a second on
// every node of a cluster with no traffic. The process here registers the metrics as the
// agent does, then idles; its main thread's voluntary context switches (one per sleep in
// epoll_wait) count how often its event loop woke.
import test from 'ava';
import { spawn } from 'node:child_process';
import { EVENT_LOOP_SAMPLE_MS } from '../../common/process-metrics.js';

const CHILD = `
import { readFileSync } from 'node:fs';
const { collectProcessMetrics } = await import(process.env.PROCESS_METRICS_MODULE);
const { Registry } = await import(process.env.PROMETHEUS_MODULE);
const switches = () => Number(/voluntary_ctxt_switches:\\s+(\\d+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))[1]);
const registry = new Registry();
collectProcessMetrics(registry, 'nodemesh_agent_');
const text = await registry.metrics();
await new Promise((r) => setTimeout(r, 300));
const before = switches();
await new Promise((r) => setTimeout(r, 2000));
const woke = switches() - before;
console.log(JSON.stringify({ woke, lagMetric: text.includes('nodemesh_agent_nodejs_eventloop_lag_p99_seconds') }));
`;

const moduleUrl = (rel: string) => new URL(rel, import.meta.url).href;

test('an idle process with the agent’s process metrics wakes its event loop at most ~30 times a second, not 100', async (t) => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: {
      ...process.env,
      PROCESS_METRICS_MODULE: moduleUrl('../../common/process-metrics.js'),
      PROMETHEUS_MODULE: moduleUrl('../../common/prometheus.js'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  t.is(code, 0, `child exited ${code}: ${err}`);
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { woke: number; lagMetric: boolean };
  t.true(r.lagMetric, 'the event-loop delay metrics are still registered');
  // 2 s at one sample per EVENT_LOOP_SAMPLE_MS (100 ms) is 20 wake-ups, plus the timer that
  // ends the wait and what V8's and libuv's threads signal; prom-client's 10 ms default made
  // ~200. The bound is absolute: sampling more often fails it whatever the constant says.
  t.true(r.woke <= 60, `the idle event loop woke ${r.woke} times in 2 s (sampling every ${EVENT_LOOP_SAMPLE_MS} ms)`);
});
