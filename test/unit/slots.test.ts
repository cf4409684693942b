// common/slots.ts: at most `size` holders, waiters served in arrival order, a slot given back
// goes straight to the longest waiter, and a closing owner can let its waiters go.
import test from 'ava';
import { Slots } from '../../common/slots.js';

/** Lets the promise callbacks queued so far run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

test('at most size holders; the others wait, and each slot given back goes to the longest waiter', async (t) => {
  const slots = new Slots(2);
  const order: string[] = [];
  const holder = (name: string) => slots.take().then(() => order.push(name));
  void holder('a');
  void holder('b');
  void holder('c');
  void holder('d');
  await settle();
  t.deepEqual(order, ['a', 'b']);
  t.is(slots.inUse, 2);
  t.is(slots.queued, 2);
  slots.give();
  // a newcomer after the give does not overtake the queue
  void holder('e');
  await settle();
  t.deepEqual(order, ['a', 'b', 'c']);
  t.is(slots.inUse, 2, 'the slot was handed over, not freed and taken again');
  slots.give();
  slots.give();
  await settle();
  t.deepEqual(order, ['a', 'b', 'c', 'd', 'e']);
  slots.give();
  slots.give();
  t.is(slots.inUse, 0);
  t.is(slots.queued, 0);
  // with nothing held, a give is not a slot more
  slots.give();
  t.is(slots.inUse, 0);
  await slots.take();
  await slots.take();
  let third = false;
  void slots.take().then(() => (third = true));
  await settle();
  t.false(third);
});

test('releaseWaiters lets every waiter go without a slot', async (t) => {
  const slots = new Slots(1);
  await slots.take();
  const released: number[] = [];
  for (const i of [1, 2, 3]) void slots.take().then(() => released.push(i));
  await settle();
  t.deepEqual(released, []);
  slots.releaseWaiters();
  await settle();
  t.deepEqual(released, [1, 2, 3]);
  t.is(slots.queued, 0);
  t.is(slots.inUse, 1);
});

test('a size below 1 is refused', (t) => {
  t.throws(() => new Slots(0), { instanceOf: RangeError, message: /at least 1, not 0/ });
  t.throws(() => new Slots(Number.NaN), { instanceOf: RangeError });
});
