// How AuthorizationPolicy values are compared with request attributes and how a request path
// is normalised (agent/policy/authorization-match.ts), each function on its own: the branches
// the evaluation tests (authorization.test.ts) reach only through whole policies.
import test from 'ava';
import { principalParts, toPrincipal } from '../../agent/policy/authorization-match.js';

test('principalParts splits td/ns/NS/sa/SA and nothing else; toPrincipal drops only a leading spiffe://', (t) => {
  t.deepEqual(principalParts('cluster.local/ns/shop/sa/web'), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
  t.is(principalParts('cluster.local/ns/shop/sa/web/extra'), undefined);
  t.is(principalParts('cluster.local/ns/shop'), undefined);
  t.is(toPrincipal('spiffe://cluster.local/ns/shop/sa/web'), 'cluster.local/ns/shop/sa/web');
  t.is(toPrincipal('cluster.local/ns/spiffe://x/sa/y'), 'cluster.local/ns/spiffe://x/sa/y');
});
