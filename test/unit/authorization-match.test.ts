// How AuthorizationPolicy values are compared with request attributes and how a request path
// is normalised (agent/policy/authorization-match.ts), each function on its own: the branches
// the evaluation tests (authorization.test.ts) reach only through whole policies.
import test from 'ava';
import fc from 'fast-check';
import { compileValues, normalizePath, principalParts, templateRegExp, toPrincipal } from '../../agent/policy/authorization-match.js';
import type { Attribute, MatchKind, ValueMatch } from '../../control/api/snapshot-security.js';

const vm = (kind: MatchKind, value = ''): ValueMatch => ({ kind, value });
const compiled = (list: ValueMatch[], attribute: Attribute) => {
  const p = compileValues(list, attribute);
  if (!p) throw new Error('compileValues gave no predicate for a non-empty list');
  return p;
};

test('principalParts splits td/ns/NS/sa/SA and nothing else; toPrincipal drops only a leading spiffe://', (t) => {
  t.deepEqual(principalParts('cluster.local/ns/shop/sa/web'), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
  t.is(principalParts('cluster.local/ns/shop/sa/web/extra'), undefined);
  t.is(principalParts('x/cluster.local/ns/shop/sa/web'), undefined);
  t.is(principalParts('cluster.local/ns/shop'), undefined);
  t.is(toPrincipal('spiffe://cluster.local/ns/shop/sa/web'), 'cluster.local/ns/shop/sa/web');
  t.is(toPrincipal('cluster.local/ns/spiffe://x/sa/y'), 'cluster.local/ns/spiffe://x/sa/y');
  t.is(toPrincipal('cluster.local/ns/shop/sa/web'), 'cluster.local/ns/shop/sa/web');
});

test('an empty list compiles to no predicate; a kind the agent does not know matches nothing (and does not throw)', (t) => {
  t.is(compileValues([], 'request.headers'), undefined);
  const p = compiled([{ kind: 'regex' as MatchKind, value: '' }], 'request.headers');
  t.false(p('anything'));
  t.false(p(''));
});

test('presence: a header is present whatever its value (even empty); other attributes need a non-empty value', (t) => {
  const header = compiled([vm('presence')], 'request.headers');
  t.true(header(''));
  t.true(header('x'));
  t.false(header([]), 'a header seen zero times is absent');
  for (const attribute of ['request.host', 'request.auth.principal', 'source.principal'] as Attribute[]) {
    const p = compiled([vm('presence')], attribute);
    t.false(p(''), `${attribute}: empty is not present`);
    t.false(p('Stryker was here!') && p(''), attribute);
    t.true(p('x'), attribute);
  }
});

test('a repeated header matches per value and as its values joined with "," (as Envoy presents it), not otherwise', (t) => {
  const joined = compiled([vm('exact', 'a,b')], 'request.headers');
  t.true(joined(['a', 'b']));
  t.false(joined(['ab']));
  t.false(joined(['a,b,c']));
  const single = compiled([vm('exact', 'b')], 'request.headers');
  t.true(single(['a', 'b']));
  t.false(single(['a', 'c']), 'no value matches and the join neither');
  t.false(single(['c']));
  t.false(single([]));
  // the join of one value is that value: nothing more to match
  t.false(compiled([vm('exact', 'a,')], 'request.headers')(['a']));
  t.false(compiled([vm('prefix', 'zz')], 'request.headers')(['a', 'b', 'c']));
});

test('exact, prefix and suffix compare case-sensitively, except request.host (Istio: hosts case-insensitively)', (t) => {
  t.true(compiled([vm('exact', 'Shop.Example')], 'request.host')('shop.EXAMPLE'));
  t.true(compiled([vm('prefix', 'SHOP.')], 'request.host')('shop.example'));
  t.true(compiled([vm('suffix', '.Example')], 'request.host')('shop.EXAMPLE'));
  t.false(compiled([vm('exact', 'Bearer')], 'request.headers')('bearer'));
  t.false(compiled([vm('prefix', 'Ab')], 'request.headers')('abc'));
  t.false(compiled([vm('suffix', 'Bc')], 'request.headers')('abc'));
  t.true(compiled([vm('prefix', 'ab')], 'request.headers')('abc'));
  t.true(compiled([vm('suffix', 'bc')], 'request.headers')('abc'));
  t.false(compiled([vm('prefix', 'bc')], 'request.headers')('abc'));
  t.false(compiled([vm('suffix', 'ab')], 'request.headers')('abc'));
  t.true(compiled([vm('exact', 'a'), vm('exact', 'b')], 'request.headers')('b'), 'a list is an OR');
});

test('templates: {*} is one non-empty segment of pchars, {**} any run of pchars and slashes, the rest literal, the whole path', (t) => {
  const one = templateRegExp('/api/{*}/items');
  t.true(one.test('/api/v1/items'));
  t.true(one.test("/api/a-z._~%20!$&'()+,;:@=/items"));
  t.false(one.test('/api//items'), '{*} is not empty');
  t.false(one.test('/api/v1/v2/items'), '{*} is one segment');
  t.false(one.test('/api/v1/items/x'), 'the whole path');
  t.false(one.test('/x/api/v1/items'), 'the whole path');
  const any = templateRegExp('/static/{**}');
  t.true(any.test('/static/'));
  t.true(any.test('/static/a/b/c.css'));
  t.false(any.test('/static/a b'), 'a space is no pchar');
  t.false(any.test('/statics/a'));
  const lit = templateRegExp('/a.b/(c)+[d]$^|?\\e/{*}');
  t.true(lit.test('/a.b/(c)+[d]$^|?\\e/x'));
  t.false(lit.test('/aXb/(c)+[d]$^|?\\e/x'), 'a dot is a dot');
  t.false(lit.test('/ab/c/x'));
  t.true(compiled([vm('template', '/v{*}/x')], 'request.path')('/v1/x'));
  t.false(compiled([vm('template', '/v{*}/x')], 'request.path')('/v/x'));
});

test('cidr: IPv4 and IPv6 ranges, an IPv4-mapped IPv6 peer in an IPv4 range, a value that is no address matches nothing', (t) => {
  const p = compiled([vm('cidr', '10.0.0.0/8'), vm('cidr', '2001:db8::/32')], 'source.ip');
  t.true(p('10.1.2.3'));
  t.false(p('11.1.2.3'));
  t.true(p('2001:db8::1'));
  t.true(p('2001:DB8:0:0::ff'));
  t.false(p('2001:db9::1'));
  t.true(p('::ffff:10.1.2.3'));
  t.true(p('::FFFF:10.1.2.3'));
  t.false(p('::ffff:11.1.2.3'));
  t.false(p('not-an-address'));
  t.false(p(''));
  const v6only = compiled([vm('cidr', '2001:db8::/32')], 'source.ip');
  t.true(v6only('2001:db8::1'));
  t.false(v6only('10.1.2.3'));
  const v4only = compiled([vm('cidr', '10.0.0.0/8')], 'destination.ip');
  t.false(v4only('2001:db8::1'));
  t.true(v4only('10.0.0.0'));
  // a cidr and a string match in one list
  const mixed = compiled([vm('cidr', '10.0.0.0/8'), vm('exact', 'other')], 'source.ip');
  t.true(mixed('other'));
  t.false(mixed('not-an-address'));
});

test('cidr: a malformed range (the compiler refuses it; a snapshot that still has one) is ignored, not thrown', (t) => {
  const p = compiled([vm('cidr', 'not-an-address/8'), vm('cidr', '10.0.0.0/8')], 'source.ip');
  t.true(p('10.0.0.1'));
  t.false(p('not-an-address'));
});

// Istio's BASE normalisation decodes exactly these (case-insensitive hex); %2f and %5c stay encoded.
function referenceDecodes(c: number): boolean {
  return c === 0x2d || c === 0x2e || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a) || c === 0x7e;
}

test('normalizePath decodes exactly the unreserved %XX (both hex cases) and leaves every other byte encoded — all 256', (t) => {
  const wrong: string[] = [];
  for (let c = 1; c < 256; c++) {
    const lower = c.toString(16).padStart(2, '0');
    for (const hex of [lower, lower.toUpperCase()]) {
      const got = normalizePath(`/a%${hex}b`)?.path;
      const want = referenceDecodes(c) ? `/a${String.fromCharCode(c)}b` : `/a%${hex}b`;
      if (got !== want) wrong.push(`%${hex}: ${got} instead of ${want}`);
    }
  }
  t.deepEqual(wrong, []);
  // the boundaries by name
  for (const kept of ['%2c', '%2f', '%2F', '%3a', '%40', '%5b', '%5c', '%60', '%7b', '%7f', '%2C']) {
    t.is(normalizePath(`/x${kept}y`)?.path, `/x${kept}y`, kept);
  }
  for (const [enc, ch] of [['%2d', '-'], ['%2e', '.'], ['%30', '0'], ['%39', '9'], ['%41', 'A'], ['%5a', 'Z'], ['%5f', '_'], ['%61', 'a'], ['%7a', 'z'], ['%7e', '~'], ['%7E', '~']]) {
    t.is(normalizePath(`/x${enc}y`)?.path, `/x${ch}y`, enc);
  }
});

test('normalizePath decodes once: an encoded percent-sign is not decoded again (property)', (t) => {
  t.notThrows(() =>
    fc.assert(
    fc.property(fc.integer({ min: 1, max: 255 }), (c) => {
      const hex = c.toString(16).padStart(2, '0');
      const got = normalizePath(`/p/%25${hex}`)?.path;
        return got === `/p/%25${hex}`;
      }),
    ),
  );
});

test('normalizePath: absolute-form keeps the path, "*" stays "*", the query is kept but not compared', (t) => {
  t.deepEqual(normalizePath('http://shop.example:8080/a/../b?x=1'), { path: '/b', target: '/b?x=1' });
  t.deepEqual(normalizePath('HTTPS://shop.example/p'), { path: '/p', target: '/p' });
  t.deepEqual(normalizePath('git+ssh://h/p'), { path: '/p', target: '/p' });
  t.deepEqual(normalizePath('h://host/p'), { path: '/p', target: '/p' });
  t.deepEqual(normalizePath('http://shop.example'), { path: '/', target: '/' });
  t.deepEqual(normalizePath('http://shop.example?q=1'), { path: '/', target: '/?q=1' });
  t.deepEqual(normalizePath('http://shop.example#f'), { path: '/#f', target: '/#f' });
  // a URL inside an origin-form path is part of the path
  t.deepEqual(normalizePath('/redirect/http://other/x'), { path: '/redirect/http://other/x', target: '/redirect/http://other/x' });
  t.deepEqual(normalizePath('1http://h/p'), { path: '/1http://h/p', target: '/1http://h/p' });
  t.deepEqual(normalizePath('*'), { path: '*', target: '*' });
  t.deepEqual(normalizePath(''), { path: '/', target: '/' });
  t.deepEqual(normalizePath('/*'), { path: '/*', target: '/*' });
  t.deepEqual(normalizePath('?a=b'), { path: '/', target: '/?a=b' });
  t.deepEqual(normalizePath('/p?a=%2e&b=/../c'), { path: '/p', target: '/p?a=%2e&b=/../c' });
  t.deepEqual(normalizePath('/p?'), { path: '/p', target: '/p?' });
});

test('normalizePath refuses %00 in the path; backslashes become slashes; a missing leading slash is added', (t) => {
  t.is(normalizePath('/a%00b'), undefined);
  t.deepEqual(normalizePath('/a?x=%00'), { path: '/a', target: '/a?x=%00' });
  t.is(normalizePath('/a\\b\\..\\c')?.path, '/a/c');
  t.is(normalizePath('a/b')?.path, '/a/b');
  t.is(normalizePath('a')?.path, '/a');
  t.is(normalizePath('\\a')?.path, '/a');
  t.is(normalizePath('/a%5cb')?.path, '/a%5cb', 'an encoded backslash stays encoded');
});

test('normalizePath resolves dot segments as RFC 3986 §5.2.4, a trailing "." or ".." leaving a trailing slash', (t) => {
  const cases: [string, string][] = [
    ['/a/b/./c', '/a/b/c'],
    ['/a/b/../c', '/a/c'],
    ['/a/.', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/.', '/'],
    ['/a/b/..', '/a/'],
    ['/a/..', '/'],
    ['/..', '/'],
    ['/../..', '/'],
    ['/../a', '/a'],
    ['/a/../../b', '/b'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E/b', '/a/b'],
    ['/a/./', '/a/'],
    ['/a/../', '/'],
    ['/a//b', '/a//b'],
    ['/a/.b/..c', '/a/.b/..c'],
    ['/', '/'],
  ];
  for (const [input, want] of cases) t.is(normalizePath(input)?.path, want, input);
});
