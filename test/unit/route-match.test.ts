// The L7 router's request matchers (agent/route-match.ts): Istio StringMatch and Gateway API
// PathPrefix semantics, AND within a match block and OR across blocks, first match wins, and
// regexes that cannot run away on long input.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import type { HttpMatch, HttpRoute, StringMatch } from '../../control/api/snapshot-routing.js';
import { compileMatch, compileRe2Matcher, compileStringMatch, firstMatch, compileRoute, matchRoute, queryParam, REGEX_INPUT_MAX, type RequestView } from '../../agent/l7/route-match.js';
import { holds } from '../helpers/property-holds.js';

const sm = (kind: StringMatch['kind'], value: string, ignoreCase = false): StringMatch => ({ kind, value, ignoreCase });

function request(over: Partial<RequestView> & { headers?: Record<string, string> } = {}): RequestView {
  const headers = over.headers ?? {};
  return {
    method: 'GET',
    path: '/',
    query: '',
    authority: 'web',
    scheme: 'http',
    port: 80,
    sourceNamespace: 'shop',
    sourceLabels: { app: 'client' },
    header: (n) => headers[n],
    ...over,
  };
}

function match(m: Partial<HttpMatch>): HttpMatch {
  return { headers: [], withoutHeaders: [], queryParams: [], port: 0, sourceLabels: {}, sourceNamespace: '', ...m };
}

const segment = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const path = fc.array(segment, { minLength: 0, maxLength: 5 }).map((s) => '/' + s.join('/'));

test('exact matches exactly the value; prefix every extension of it', (t) => {
  holds(
    t,
    fc.property(fc.string(), fc.string(), (a, b) => {
      assert.equal(compileStringMatch(sm('exact', a)).test(b), a === b);
      assert.ok(compileStringMatch(sm('prefix', a)).test(a + b));
      assert.equal(compileStringMatch(sm('prefix', a)).test(b), b.startsWith(a));
    }),
  );
});

test('ignoreCase compares case-insensitively; absent values never match but for nothing', (t) => {
  holds(
    t,
    fc.property(fc.stringMatching(/^[a-zA-Z]{0,8}$/), (a) => {
      assert.ok(compileStringMatch(sm('exact', a.toUpperCase(), true)).test(a.toLowerCase()));
      assert.ok(compileStringMatch(sm('prefix', a.toLowerCase(), true)).test(a.toUpperCase() + 'x'));
    }),
  );
  for (const kind of ['exact', 'prefix', 'regex', 'pathPrefix', 'present'] as const) t.false(compileStringMatch(sm(kind, '')).test(undefined), kind);
  t.true(compileStringMatch(sm('present', '')).test(''));
});

test('Gateway API PathPrefix matches whole path elements only, a trailing slash ignored', (t) => {
  holds(
    t,
    fc.property(path, path, segment, (p, rest, extra) => {
      const m = compileStringMatch(sm('pathPrefix', p));
      assert.ok(m.test(p), `${p} matches itself`);
      assert.ok(m.test(p === '/' ? rest : p + rest), `${p} + ${rest}`);
      if (p !== '/') {
        assert.ok(!m.test(p + extra), `${p}${extra} is another element`);
        assert.ok(compileStringMatch(sm('pathPrefix', p + '/')).test(p), 'trailing slash ignored');
      }
    }),
  );
  const foo = compileStringMatch(sm('pathPrefix', '/foo'));
  t.deepEqual(['/foo', '/foo/', '/foo/bar', '/foobar', '/fo'].map((p) => foo.test(p)), [true, true, true, false, false]);
});

test('a PathPrefix written with a trailing slash matches exactly the paths it matches without one', (t) => {
  holds(
    t,
    fc.property(path.filter((p) => p !== '/'), path, segment, (p, other, extra) => {
      const bare = compileStringMatch(sm('pathPrefix', p));
      const slashed = compileStringMatch(sm('pathPrefix', p + '/'));
      for (const q of [p, p + '/', p + other, p + extra, other, '/' + extra]) assert.equal(slashed.test(q), bare.test(q), `${p}/ against ${q}`);
    }),
  );
  t.deepEqual(['/foo', '/foo/', '/foo/bar', '/foobar', '/bar'].map((q) => compileStringMatch(sm('pathPrefix', '/foo/')).test(q)), [true, true, true, false, false]);
});

test('regex is a full match (Envoy safe_regex), RE2 spellings as written', (t) => {
  const r = compileStringMatch(sm('regex', '/api/v[0-9]+'));
  t.true(r.test('/api/v12'));
  t.false(r.test('/api/v12/x'), 'anchored at the end');
  t.false(r.test('x/api/v1'), 'anchored at the start');
  t.true(compileStringMatch(sm('regex', '(?i)abc')).test('ABC'));
  t.true(compileRe2Matcher('(?P<v>v[0-9])', false)!.matches('v1'));
  t.is(compileRe2Matcher('(', false), undefined, 'a pattern RE2 cannot compile never matches');
  t.false(compileStringMatch(sm('regex', '(')).test('('));
});

test('a regex never runs on input longer than the cap, so a backtracking pattern cannot stall the proxy', (t) => {
  // run on 4 KiB of "a", (a+)+b would backtrack for longer than the universe exists
  const evil = compileStringMatch(sm('regex', '(a+)+b'));
  t.false(evil.test('a'.repeat(REGEX_INPUT_MAX + 1)));
  // the cap, not the pattern, decides: a value the pattern matches is refused past it
  const plain = compileStringMatch(sm('regex', 'a+'));
  t.true(plain.test('a'.repeat(REGEX_INPUT_MAX)));
  t.false(plain.test('a'.repeat(REGEX_INPUT_MAX + 1)));
});

test('a query parameter reads as URLSearchParams reads it: the first of its name, + and %XX decoded, empty without =, keys split at the first =', (t) => {
  const token = fc.constantFrom('a', 'b', '=', '&', '+', '%20', '%3D', '%26');
  const query = fc.array(token, { maxLength: 10 }).map((p) => p.join(''));
  // names as the APIs allow them: never empty (both validators refuse an empty name)
  const name = fc.array(fc.constantFrom('a', 'b', '=', ' ', '&'), { minLength: 1, maxLength: 3 }).map((p) => p.join(''));
  holds(
    t,
    fc.property(query, name, (q, n) => {
      assert.equal(queryParam(q, n), new URLSearchParams(q).get(n) ?? undefined, `${n} in ${q}`);
    }),
  );
  t.is(queryParam('=x&a=1', '=x'), undefined, 'a segment starting with = has the empty name');
});

test('query parameters: first occurrence, decoded, presence without value', (t) => {
  t.is(queryParam('a=1&b=2&a=3', 'a'), '1');
  t.is(queryParam('x=hello%20world&y', 'x'), 'hello world');
  t.is(queryParam('x=a+b', 'x'), 'a b');
  t.is(queryParam('flag&x=1', 'flag'), '');
  t.is(queryParam('x=1', 'y'), undefined);
  t.is(queryParam('', 'x'), undefined);
  holds(
    t,
    fc.property(fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.string({ maxLength: 8 })), (params) => {
      const q = new URLSearchParams(params).toString();
      for (const [k, v] of Object.entries(params)) assert.equal(queryParam(q, k), v);
    }),
  );
});

test('every condition of a block must hold (AND): method, uri, headers, withoutHeaders, query, port, source', (t) => {
  const block = compileMatch(
    match({
      method: sm('exact', 'POST'),
      uri: sm('prefix', '/api'),
      headers: [{ name: 'x-user', match: sm('exact', 'jason') }],
      withoutHeaders: [{ name: 'x-debug', match: sm('present', '') }],
      queryParams: [{ name: 'v', match: sm('regex', '[0-9]+') }],
      port: 80,
      sourceLabels: { app: 'client' },
      sourceNamespace: 'shop',
    }),
  );
  const ok = { method: 'POST', path: '/api/x', query: 'v=2', headers: { 'x-user': 'jason' } };
  t.true(block.test(request(ok)));
  t.false(block.test(request({ ...ok, method: 'GET' })), 'method');
  t.false(block.test(request({ ...ok, path: '/web' })), 'uri');
  t.false(block.test(request({ ...ok, headers: {} })), 'header missing');
  t.false(block.test(request({ ...ok, headers: { 'x-user': 'jason', 'x-debug': '1' } })), 'withoutHeaders present');
  t.false(block.test(request({ ...ok, query: 'v=x' })), 'query');
  t.false(block.test(request({ ...ok, port: 8080 })), 'port');
  t.false(block.test(request({ ...ok, sourceLabels: { app: 'other' } })), 'sourceLabels');
  t.false(block.test(request({ ...ok, sourceNamespace: 'other' })), 'sourceNamespace');
});

test('blocks are OR-ed and the first matching route wins, as a reference model says', (t) => {
  const methods = ['GET', 'POST', 'PUT'];
  const blockArb = fc.record({ method: fc.option(fc.constantFrom(...methods), { nil: undefined }), prefix: fc.option(path, { nil: undefined }) });
  const routeArb = fc.array(blockArb, { maxLength: 3 });
  holds(
    t,
    fc.property(fc.array(routeArb, { minLength: 1, maxLength: 5 }), fc.constantFrom(...methods), path, (routes, method, p) => {
      const compiled = routes.map((blocks, i) =>
        compileRoute({
          name: `r${i}`,
          match: blocks.map((b) => match({ method: b.method ? sm('exact', b.method) : undefined, uri: b.prefix ? sm('prefix', b.prefix) : undefined })),
        } as HttpRoute),
      );
      const model = routes.findIndex(
        (blocks) => blocks.length === 0 || blocks.some((b) => (!b.method || b.method === method) && (!b.prefix || p.startsWith(b.prefix))),
      );
      const got = firstMatch(compiled, request({ method, path: p }));
      assert.equal(got ? compiled.indexOf(got.route) : -1, model);
    }),
  );
});

test('a regex match stays linear on hostile input: (a+)+b against 4,000 characters answers within a second', (t) => {
  // JavaScript's backtracking engine would not return from this in our lifetime; RE2
  // (re2js) answers in milliseconds, and the bound has room for a loaded machine
  const evil = compileStringMatch(sm('regex', '(a+)+b'));
  const started = performance.now();
  t.false(evil.test('a'.repeat(4000) + 'c'));
  t.true(performance.now() - started < 1000);
  t.true(evil.test('aaab'));
});

test('authority and scheme conditions; header names in any case; every source label must hold', (t) => {
  const block = compileMatch(
    match({
      authority: sm('prefix', 'web', true),
      scheme: sm('exact', 'https'),
      headers: [{ name: 'X-User', match: sm('exact', 'jason') }],
      sourceLabels: { app: 'client', version: 'v2' },
    }),
  );
  const ok = { authority: 'WEB.shop:80', scheme: 'https', headers: { 'x-user': 'jason' }, sourceLabels: { app: 'client', version: 'v2', extra: 'x' } };
  t.true(block.test(request(ok)));
  t.false(block.test(request({ ...ok, authority: 'api' })), 'authority');
  t.false(block.test(request({ ...ok, scheme: 'http' })), 'scheme');
  t.false(block.test(request({ ...ok, sourceLabels: { app: 'client' } })), 'a label missing');
  t.false(block.test(request({ ...ok, sourceLabels: undefined })), 'a caller without labels (not a workload)');
  t.true(compileMatch(match({})).test(request({ sourceLabels: undefined })), 'an empty block matches everything');
});

test('ignoreCase for every kind; the regex flag; PathPrefix / matches every path', (t) => {
  t.true(compileStringMatch(sm('pathPrefix', '/Foo', true)).test('/fOO/bar'));
  t.false(compileStringMatch(sm('pathPrefix', '/Foo')).test('/foo/bar'));
  t.true(compileStringMatch(sm('regex', 'ab+c', true)).test('ABBC'));
  t.false(compileStringMatch(sm('regex', 'ab+c')).test('ABBC'));
  t.true(compileRe2Matcher('ab', true)!.matches('AB'));
  t.false(compileRe2Matcher('ab', false)!.matches('AB'));
  for (const kind of ['exact', 'prefix', 'pathPrefix', 'regex'] as const) t.false(compileStringMatch(sm(kind, '/', true)).test(undefined), `${kind}, ignoring case`);
  for (const p of ['/', '']) {
    const all = compileStringMatch(sm('pathPrefix', p));
    t.deepEqual(['/', '/a', '/a/b'].map((x) => all.test(x)), [true, true, true], `PathPrefix '${p}'`);
    t.false(all.test('a'), 'not a path');
  }
  t.false(compileStringMatch(sm('exact', 'a', true)).test('b'));
  t.false(compileStringMatch(sm('prefix', 'ab', true)).test('a'));
});

test('the matching block is the first that matches; a route without blocks matches with none; no route, no match', (t) => {
  const route = compileRoute({
    name: 'r',
    match: [match({ uri: sm('prefix', '/a') }), match({ uri: sm('prefix', '/ab') }), match({ method: sm('exact', 'POST') })],
  } as HttpRoute);
  t.is(matchRoute(route, request({ path: '/abc' }))?.uri?.value, '/a');
  t.is(matchRoute(route, request({ path: '/x', method: 'POST' })), route.blocks[2]);
  t.is(matchRoute(route, request({ path: '/x' })), undefined);
  t.is(matchRoute(compileRoute({ name: 'all' } as HttpRoute), request()), null);
  t.is(firstMatch([], request()), undefined);
});

test('query parameter names and values are decoded; a value that is not valid percent-encoding is taken as written', (t) => {
  t.is(queryParam('a%20b=1', 'a b'), '1');
  t.is(queryParam('x=%E0%A4%A', 'x'), '%E0%A4%A');
  t.is(queryParam('x=', 'x'), '');
  t.is(queryParam('&&x=2', 'x'), '2');
  t.is(queryParam('y=1&x', 'x'), '');
  t.is(queryParam('xx=1', 'x'), undefined);
});
