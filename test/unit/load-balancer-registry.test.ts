// The balancer registry on its own (a test file is a process of its own): without the
// strategies loaded there is no balancer to make, and asking for one says what to import.
import test from 'ava';
import { newBalancer } from '../../agent/cluster/load-balancer/load-balancer.js';

test('without the strategies loaded, asking for a balancer names the module to import', (t) => {
  t.throws(() => newBalancer(undefined), { message: 'no load balancer registered: import cluster/load-balancer/strategies.js' });
});
