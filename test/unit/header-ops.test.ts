// What the router does to headers and paths (agent/l7/header-ops.ts), as Istio, the Gateway
// API and Envoy define it: hop-by-hop headers never forwarded, set/add/remove in Envoy's
// order, path rewrites (Istio's prefix rewrite, the Gateway API's ReplaceFullPath and
// ReplacePrefixMatch table, Envoy's regex rewrite) and redirects.
import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import type { HeaderOps, Redirect, Rewrite, StringMatch } from '../../control/api/snapshot-routing.js';
import { applyOps, compileUriRegex, emptyOps, forwardH2, forwardRaw, isHopByHop, redirectLocation, rewritePath } from '../../agent/l7/header-ops.js';
import { holds } from '../helpers/property-holds.js';

const rw = (over: Partial<Rewrite>): Rewrite => ({ uri: '', replacePrefixMatch: '', replaceFullPath: '', authority: '', ...over });
const ops = (over: Partial<HeaderOps>): HeaderOps => ({ set: {}, add: {}, remove: [], ...over });
const sm = (kind: StringMatch['kind'], value: string, ignoreCase = false): StringMatch => ({ kind, value, ignoreCase }) as StringMatch;

test('uriRegexRewrite replaces every match with RE2 and turns \\1 references into groups', (t) => {
  const rx = { match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1' };
  t.is(rewritePath('/service/foo/bar', rw({ uriRegex: rx }), undefined, compileUriRegex(rx)), '/bar/instance/foo');
  // Envoy's regex_rewrite substitutes every match, not just the first
  const all = { match: 'o', rewrite: '0' };
  t.is(rewritePath('/foo/boo', rw({ uriRegex: all }), undefined, compileUriRegex(all)), '/f00/b00');
  // a literal $ in the rewrite stays a literal
  const dollar = { match: '^/price$', rewrite: '/price$usd' };
  t.is(rewritePath('/price', rw({ uriRegex: dollar }), undefined, compileUriRegex(dollar)), '/price$usd');
  t.is(compileUriRegex({ match: '(', rewrite: 'x' }), undefined, 'a pattern RE2 refuses rewrites nothing');
});

test('uriRegexRewrite is linear: a backtracking pattern on a 4,000-character path answers within a second (a backtracking engine would never finish)', (t) => {
  const rx = { match: '(a+)+b', rewrite: 'x' };
  const path = '/' + 'a'.repeat(4000) + 'c';
  const started = performance.now();
  t.is(rewritePath(path, rw({ uriRegex: rx }), undefined, compileUriRegex(rx)), path);
  // RE2 takes about a millisecond; the bound has room for a loaded machine
  t.true(performance.now() - started < 1000);
});

test('hop-by-hop headers, and those Connection names, are never forwarded; set replaces, add appends, remove drops (any case)', (t) => {
  const raw = ['Host', 'web', 'Connection', 'keep-alive, X-Private', 'Keep-Alive', '5', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Connection', 'x', 'HTTP2-Settings', 'AAA', 'x-private', 'secret', 'X-Keep', 'a', 'X-Set', 'old', 'x-drop', '1', 'X-Add', 'first'];
  const out = forwardRaw(raw, [ops({ set: { 'x-set': 'new' }, add: { 'X-Add': 'second' }, remove: ['X-DROP'] })]);
  t.deepEqual(out, ['Host', 'web', 'X-Keep', 'a', 'X-Add', 'first', 'x-set', 'new', 'X-Add', 'second']);
  t.deepEqual(forwardRaw(['Host', 'web', 'x-skip', '1'], [], 'x-skip'), ['Host', 'web'], 'a skipped name (the authority when rewritten)');
  t.deepEqual(forwardRaw(['a', '1', 'b', '2'], [undefined, ops({ set: { a: '3' } }), undefined, ops({ remove: ['b'] })]), ['a', '3'], 'several lists (route, then destination)');
  t.deepEqual(forwardRaw(['connectionx', '1', 'Connectio', '2'], []), ['connectionx', '1', 'Connectio', '2'], 'names that only look like Connection');
  for (const h of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']) t.true(isHopByHop(h), h);
  t.false(isHopByHop('host'));
});

test('HTTP/2 headers: remove, set (replaces), add (appends to what is there); pseudo-headers and connection fields dropped, except te: trailers', (t) => {
  const h: Record<string, string | string[] | undefined> = { 'x-one': 'a', 'x-many': ['b', 'c'], 'x-gone': 'd', 'x-set': 'old' };
  applyOps(h, ops({ remove: ['X-Gone'], set: { 'X-Set': 'new' }, add: { 'x-one': 'a2', 'X-Many': 'e', 'x-new': 'f' } }));
  t.deepEqual(h, { 'x-one': ['a', 'a2'], 'x-many': ['b', 'c', 'e'], 'x-set': 'new', 'x-new': 'f' });
  applyOps(h, undefined);
  t.is(h['x-new'], 'f');
  const sent = { ':method': 'GET', ':path': '/', connection: 'close', te: 'trailers', upgrade: 'x', 'x-a': '1' };
  t.deepEqual(forwardH2(sent, false), { te: 'trailers', 'x-a': '1' });
  t.deepEqual(forwardH2(sent, true), { ':method': 'GET', ':path': '/', te: 'trailers', 'x-a': '1' });
  t.deepEqual(forwardH2({ te: 'gzip' }, false), {}, 'te other than trailers is hop-by-hop');
});

test('header operations are empty only when they remove, set and add nothing', (t) => {
  t.true(emptyOps(undefined));
  t.true(emptyOps(ops({})));
  t.true(emptyOps({} as HeaderOps));
  t.false(emptyOps(ops({ remove: ['a'] })));
  t.false(emptyOps(ops({ set: { a: '1' } })));
  t.false(emptyOps(ops({ add: { a: '1' } })));
});

test("Gateway API ReplacePrefixMatch, the spec's table", (t) => {
  // Request path | PathPrefix match | replacement | modified path (the validator turns "" into "/")
  const table: [string, string, string, string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '/', '/bar'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ];
  for (const [path, prefix, replacement, want] of table) {
    t.is(rewritePath(path, rw({ replacePrefixMatch: replacement }), sm('pathPrefix', prefix), undefined), want, `${path} ${prefix} → ${replacement}`);
    t.is(redirectLocation(redirect({ replacePrefixMatch: replacement }), req(path), sm('pathPrefix', prefix)), `http://web${want}`, `redirect ${path}`);
  }
  t.is(rewritePath('/FOO/bar', rw({ replacePrefixMatch: '/xyz' }), sm('pathPrefix', '/foo', true), undefined), '/xyz/bar', 'ignoring case');
  t.is(rewritePath('/other', rw({ replacePrefixMatch: '/xyz' }), sm('pathPrefix', '/foo'), undefined), '/other', 'no match: unchanged');
  t.is(rewritePath('/foo/bar', rw({ replacePrefixMatch: '/xyz' }), undefined, undefined), '/foo/bar', 'no match condition: unchanged');
});

test("Istio's rewrite.uri replaces the matched prefix, or the whole path for other matches; ReplaceFullPath replaces everything", (t) => {
  t.is(rewritePath('/old/thing', rw({ uri: '/new/' }), sm('prefix', '/old/'), undefined), '/new/thing');
  t.is(rewritePath('/OLD/thing', rw({ uri: '/new/' }), sm('prefix', '/old/', true), undefined), '/new/thing');
  t.is(rewritePath('/old/thing', rw({ uri: '/new' }), sm('exact', '/old/thing'), undefined), '/new', 'an exact match: the whole path');
  t.is(rewritePath('/old/thing', rw({ uri: '/new' }), sm('regex', '/old/.*'), undefined), '/new');
  t.is(rewritePath('/old/thing', rw({ uri: '/new' }), undefined, undefined), '/new', 'no match condition');
  t.is(rewritePath('/a/b', rw({ replaceFullPath: '/c' }), sm('pathPrefix', '/a'), undefined), '/c');
  t.is(rewritePath('/a/b', rw({}), sm('prefix', '/a'), undefined), '/a/b', 'no rewrite');
  // Istio's prefix is a string prefix (no element boundary), as is Envoy's prefix_rewrite
  t.is(rewritePath('/apix', rw({ uri: '/v2' }), sm('prefix', '/api'), undefined), '/v2x');
});

const req = (path: string, over: Partial<{ scheme: string; authority: string; query: string }> = {}) => ({ scheme: 'http', authority: 'web', path, query: '', ...over });
const redirect = (over: Partial<Redirect>): Redirect => ({ uri: '', replacePrefixMatch: '', authority: '', scheme: '', port: 0, status: 302, ...over });

test('redirects: scheme, authority and port as asked, the request keeps what is not; the query is kept', (t) => {
  t.is(redirectLocation(redirect({ uri: '/here' }), req('/moved', { query: 'a=b' }), sm('exact', '/moved')), 'http://web/here?a=b');
  t.is(redirectLocation(redirect({ uri: '/here' }), req('/x/y'), sm('prefix', '/x')), 'http://web/here', 'Istio: the entire path, even for a prefix match');
  t.is(redirectLocation(redirect({ authority: 'elsewhere' }), req('/p'), undefined), 'http://elsewhere/p');
  t.is(redirectLocation(redirect({ port: 8443 }), req('/p', { authority: 'web:8080' }), undefined), 'http://web:8443/p');
  t.is(redirectLocation(redirect({ port: 8443, authority: 'other' }), req('/p', { authority: 'web:8080' }), undefined), 'http://other:8443/p');
  t.is(redirectLocation(redirect({ scheme: 'https' }), req('/p', { authority: 'web:8080' }), undefined), 'https://web/p', "a new scheme: its default port");
  t.is(redirectLocation(redirect({ scheme: 'http' }), req('/p', { authority: 'web:8080' }), undefined), 'http://web:8080/p', 'the same scheme keeps the port');
  t.is(redirectLocation(redirect({ scheme: 'https', port: 8443 }), req('/p', { authority: 'web:8080' }), undefined), 'https://web:8443/p');
  t.is(redirectLocation(redirect({ replacePrefixMatch: '/xyz' }), req('/other'), sm('pathPrefix', '/foo')), 'http://web/other', 'no match: the path stays');
  t.is(redirectLocation(redirect({ replacePrefixMatch: '/xyz', uri: '/full' }), req('/foo/a'), sm('pathPrefix', '/foo')), 'http://web/xyz/a', 'the prefix replacement wins');
  t.is(redirectLocation(redirect({ replacePrefixMatch: '/xyz', uri: '/full' }), req('/foo/a'), undefined), 'http://web/full', 'without a match condition, the full path');
  t.is(redirectLocation(redirect({}), req('/p'), undefined), 'http://web/p');
});

test('only the Connection header names headers to drop: the value of any other header, even one of ten letters, names nothing', (t) => {
  const raw = ['X-Tracking', 'x-keep', 'Accept', 'x-also', 'x-keep', '1', 'x-also', '2'];
  t.deepEqual(forwardRaw(raw, []), raw);
  t.deepEqual(forwardRaw(['CONNECTION', 'x-gone', 'x-gone', '1', 'x-kept', '2'], []), ['x-kept', '2'], 'Connection in any case');
});

test('HTTP/2: te is the one connection field kept, and only with the value trailers; another field saying trailers is still dropped', (t) => {
  t.deepEqual(forwardH2({ connection: 'trailers', upgrade: 'trailers', 'keep-alive': 'trailers', te: 'trailers', 'x-a': '1' }, false), { te: 'trailers', 'x-a': '1' });
});

test("rewrite.uri after a regex match replaces the whole path, even when the pattern's text begins the path", (t) => {
  // '/a.*' as RE2 matches '/a.*x' whole, and '/a.*' is also that path's first four characters
  t.is(rewritePath('/a.*x', rw({ uri: '/new' }), sm('regex', '/a.*'), undefined), '/new');
});

test("Istio's empty uri prefix matches every path, and rewrite.uri goes in front of the whole of it (Envoy's prefix_rewrite of an empty prefix)", (t) => {
  t.is(rewritePath('/x/y', rw({ uri: '/v2' }), sm('prefix', ''), undefined), '/v2/x/y');
});

test("a redirect's port, or a new scheme, replaces only the authority's port, also when the host is an IPv6 literal", (t) => {
  t.is(redirectLocation(redirect({ port: 8443 }), req('/p', { authority: '[::1]:8080' }), undefined), 'http://[::1]:8443/p');
  t.is(redirectLocation(redirect({ scheme: 'https' }), req('/p', { authority: '[fd00::1]:8080' }), undefined), 'https://[fd00::1]/p');
  t.is(redirectLocation(redirect({ port: 8443 }), req('/p', { authority: '[fd00::1]' }), undefined), 'http://[fd00::1]:8443/p', 'a literal without a port');
});

test('each hop-by-hop header is dropped on its own, in any case, without a Connection header naming it or a route operation (as Envoy cleans them from every request)', (t) => {
  for (const h of ['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'Upgrade', 'TE', 'HTTP2-Settings']) {
    for (const name of [h, h.toLowerCase(), h.toUpperCase()]) {
      t.deepEqual(forwardRaw(['Host', 'web', name, 'x', 'X-Keep', '1'], []), ['Host', 'web', 'X-Keep', '1'], name);
    }
  }
  // names of a hop-by-hop name's length that are not one are kept
  t.deepEqual(forwardRaw(['X-Keep-Hop', '1', 'Tx', '2', 'X-Transfer-Encodin', '3'], []), ['X-Keep-Hop', '1', 'Tx', '2', 'X-Transfer-Encodin', '3']);
});

test("ReplacePrefixMatch after PathPrefix '/': the replacement goes in front of the whole path, at an element boundary ('/abc' → '/xyz/abc', not '/xyzabc'), for rewrites and redirects", (t) => {
  // Request path | replacement | modified path
  const table: [string, string, string][] = [
    ['/abc', '/xyz', '/xyz/abc'],
    ['/abc', '/xyz/', '/xyz/abc'],
    ['/abc/def/', '/xyz', '/xyz/abc/def/'],
    ['/abc', '/', '/abc'],
    ['/', '/xyz', '/xyz/'],
    ['/', '/', '/'],
  ];
  for (const [path, replacement, want] of table) {
    t.is(rewritePath(path, rw({ replacePrefixMatch: replacement }), sm('pathPrefix', '/'), undefined), want, `${path} → ${replacement}`);
    t.is(redirectLocation(redirect({ replacePrefixMatch: replacement }), req(path), sm('pathPrefix', '/')), `http://web${want}`, `redirect ${path} → ${replacement}`);
  }
});

/** A path of `elems` path elements ('/' when there is none), with a trailing slash or not. */
const joinPath = (elems: string[], trailing: boolean) => (elems.length === 0 ? '/' : `/${elems.join('/')}${trailing ? '/' : ''}`);

test('ReplacePrefixMatch works element by element: the prefix elements are replaced by the replacement elements, the rest of the path and its trailing slash kept; a path equal to the prefix becomes the replacement', (t) => {
  const label = fc.stringMatching(/^[a-z0-9.~-]{1,6}$/);
  const elems = fc.array(label, { maxLength: 4 });
  holds(
    t,
    fc.property(elems, fc.nat(4), fc.boolean(), fc.boolean(), elems, fc.boolean(), (pathElems, k0, trailing, prefixSlash, replElems, replSlash) => {
      const k = Math.min(k0, pathElems.length);
      const path = joinPath(pathElems, trailing);
      const prefix = joinPath(pathElems.slice(0, k), prefixSlash);
      const replacement = joinPath(replElems, replSlash);
      // the reference, element-wise: the spec's table, with the root '/' a path of no element
      // that ends with a slash
      const rest = pathElems.slice(k);
      const endsWithSlash = pathElems.length === 0 || trailing;
      const out = [...replElems, ...rest];
      const want = rest.length === 0 && !endsWithSlash ? replacement : `/${out.join('/')}${endsWithSlash && out.length > 0 ? '/' : ''}`;
      assert.equal(rewritePath(path, rw({ replacePrefixMatch: replacement }), sm('pathPrefix', prefix), undefined), want, `${path} ${prefix} → ${replacement}`);
      assert.equal(redirectLocation(redirect({ replacePrefixMatch: replacement }), req(path), sm('pathPrefix', prefix)), `http://web${want}`);
    }),
  );
});
