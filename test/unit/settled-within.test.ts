// common/settled-within.ts: true when the promise resolves in time, false after the wait or on
// a rejection, and no timer left behind either way.
import test from 'ava';
import { settledWithin } from '../../common/settled-within.js';

const activeTimers = () =>
  (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test.serial('resolved in time: true, and its timer is cleared', async (t) => {
  const before = activeTimers();
  t.true(await settledWithin(new Promise((r) => setTimeout(r, 10)), 5_000));
  t.is(activeTimers(), before);
});

test.serial('not in time: false; a rejection: false; no wait at all: false', async (t) => {
  t.false(await settledWithin(new Promise(() => {}), 20));
  t.false(await settledWithin(Promise.reject(new Error('no')), 5_000));
  t.false(await settledWithin(Promise.resolve(), 0));
});
