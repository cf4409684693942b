// agent/transport/async-bind-fix.ts: on Node 20, AsyncResource#bind without DEP0172's
// `asyncResource` accessor (the per-stream cost of every HTTP/2 request), and otherwise the
// same bound function: the resource's async scope, `this`, arguments, `length`, errors.
import test from 'ava';
import { AsyncLocalStorage, AsyncResource, executionAsyncId, triggerAsyncId } from 'node:async_hooks';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { asyncBindFix } from '../../agent/transport/async-bind-fix.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);

test('installed on a Node that adds the deprecated property (Node 20 and its kin)', (t) => {
  // the property went End-of-Life upstream (nodejs/node#58618); this checkout runs on Node 20
  if (nodeMajor <= 22) t.true(asyncBindFix.installed);
  const bound = new AsyncResource('t').bind(() => 1);
  t.false(Object.prototype.hasOwnProperty.call(bound, 'asyncResource'));
});

test('a bound function runs in the resource’s async scope, with its caller’s this and arguments', (t) => {
  const als = new AsyncLocalStorage<string>();
  let resource!: AsyncResource;
  const f = function (this: unknown, a: number, b: number) {
    return { self: this, sum: a + b, id: executionAsyncId(), trigger: triggerAsyncId(), store: als.getStore() };
  };
  const bound = als.run('bound-here', () => {
    resource = new AsyncResource('t');
    return resource.bind(f);
  });
  const receiver = { name: 'receiver' };
  const r = als.run('called-here', () => bound.call(receiver, 2, 3) as ReturnType<typeof f>);
  t.is(r.self, receiver);
  t.is(r.sum, 5);
  t.is(r.id, resource.asyncId());
  t.is(r.trigger, resource.triggerAsyncId());
  t.is(r.store, 'bound-here');
  t.is(bound.length, 2);
});

test('a thisArg is fixed, and the static AsyncResource.bind goes through the same method', (t) => {
  const fixed = { name: 'fixed' };
  // @types/node leaves out bind's thisArg, which Node has taken since v17.8
  const bindWith = AsyncResource.prototype.bind as unknown as (fn: () => unknown, thisArg: unknown) => () => unknown;
  const bound = bindWith.call(
    new AsyncResource('t'),
    function (this: unknown) {
      return this;
    },
    fixed,
  );
  t.is(bound.call({ other: true }), fixed);
  const stat = AsyncResource.bind((x: number) => x * 2);
  t.is(stat(21), 42);
  t.false(Object.prototype.hasOwnProperty.call(stat, 'asyncResource'));
});

test('binding something that is not a function fails as Node’s own bind does', (t) => {
  const err = t.throws(() => new AsyncResource('t').bind(42 as unknown as () => void));
  t.is((err as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_TYPE');
});

test('an HTTP/2 request still works, with no DEP0172 warning', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.message);
  process.on('warning', onWarning);
  const server = http2.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    for (let i = 0; i < 3; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        const st = client.request({ ':path': '/' });
        let b = '';
        st.setEncoding('utf8');
        st.on('data', (c: string) => (b += c));
        st.on('end', () => resolve(b));
        st.on('error', reject);
      });
      t.is(body, 'ok');
    }
  } finally {
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
    process.off('warning', onWarning);
  }
  t.false(warnings.includes('DEP0172'));
});
