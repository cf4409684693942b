// common/joinable-run.ts: calls made while a run waits its turn join it and it runs with the
// newest input; a call made once it has started gets a run of its own, after it.
import test from 'ava';
import { JoinableRun } from '../../common/joinable-run.js';

/** A serial queue whose current turn the test releases by hand. */
function gatedQueue() {
  let tail = Promise.resolve();
  let release: () => void = () => undefined;
  const enqueue = (start: () => Promise<void>) => {
    const next = tail.then(start);
    tail = next.catch(() => undefined);
    return next;
  };
  const occupy = () => enqueue(() => new Promise<void>((r) => (release = r)));
  return { enqueue, occupy, release: () => release() };
}

test('calls made while a run waits its turn join it: one run, with the newest input, and all of them resolve after it', async (t) => {
  const q = gatedQueue();
  const runs: number[] = [];
  const j = new JoinableRun<number>(q.enqueue, async (n) => void runs.push(n));
  const busy = q.occupy(); // something else holds the queue
  const calls = [1, 2, 3, 4].map((n) => j.request(n));
  await new Promise((r) => setImmediate(r));
  t.deepEqual(runs, [], 'nothing runs before its turn');
  q.release();
  await busy;
  await Promise.all(calls);
  t.deepEqual(runs, [4]);
});

test('a call made after the run started gets a run of its own, which starts after the first ends', async (t) => {
  const q = gatedQueue();
  const events: string[] = [];
  let finishFirst: () => void = () => undefined;
  const j = new JoinableRun<string>(q.enqueue, (s) => {
    events.push(`start ${s}`);
    return s === 'a' ? new Promise<void>((r) => (finishFirst = () => (events.push('end a'), r()))) : Promise.resolve();
  });
  const first = j.request('a');
  await new Promise((r) => setImmediate(r));
  t.deepEqual(events, ['start a']);
  const second = j.request('b'); // 'a' has started: 'b' must not join it
  const third = j.request('c'); // joins 'b', which has not started
  finishFirst();
  await Promise.all([first, second, third]);
  t.deepEqual(events, ['start a', 'end a', 'start c']);
});

test('a run that fails rejects every call that joined it; the next call runs anew', async (t) => {
  const q = gatedQueue();
  let fail = true;
  const j = new JoinableRun<number>(q.enqueue, async () => {
    if (fail) throw new Error('no');
  });
  const calls = [j.request(1), j.request(2)];
  for (const c of calls) await t.throwsAsync(c, { message: 'no' });
  fail = false;
  await t.notThrowsAsync(j.request(3));
});
