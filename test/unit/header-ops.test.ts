// Path rewrites as Istio and the Gateway API define them, on the agent's side.
import test from 'ava';
import type { Rewrite } from '../../control/api/snapshot-routing.js';
import { compileUriRegex, rewritePath } from '../../agent/l7/header-ops.js';

const rw = (over: Partial<Rewrite>): Rewrite => ({ uri: '', replacePrefixMatch: '', replaceFullPath: '', authority: '', ...over });

test('uriRegexRewrite replaces every match with RE2 and turns \\1 references into groups', (t) => {
  const rx = { match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1' };
  t.is(rewritePath('/service/foo/bar', rw({ uriRegex: rx }), undefined, compileUriRegex(rx)), '/bar/instance/foo');
  // Envoy's regex_rewrite substitutes every match, not just the first
  const all = { match: 'o', rewrite: '0' };
  t.is(rewritePath('/foo/boo', rw({ uriRegex: all }), undefined, compileUriRegex(all)), '/f00/b00');
  // a literal $ in the rewrite stays a literal
  const dollar = { match: '^/price$', rewrite: '/price$usd' };
  t.is(rewritePath('/price', rw({ uriRegex: dollar }), undefined, compileUriRegex(dollar)), '/price$usd');
});

test('uriRegexRewrite is linear: a backtracking pattern on a long path answers at once', (t) => {
  const rx = { match: '(a+)+b', rewrite: 'x' };
  const path = '/' + 'a'.repeat(4000) + 'c';
  t.is(rewritePath(path, rw({ uriRegex: rx }), undefined, compileUriRegex(rx)), path);
});
