// The agent takes undici's Pool and Client from their own files (agent/transport/undici-dispatchers.ts),
// not from undici's index, which loads fetch, WebSocket and the rest for ~10 MB of RSS.
import test from 'ava';
import { createRequire } from 'node:module';
import { Client, Pool } from '../../agent/transport/undici-dispatchers.js';

const require = createRequire(import.meta.url);

// serial, in this order: the first test must see what loading the agent loads, before the
// second loads undici's index itself
test.serial("loading the agent does not load undici's index", async (t) => {
  const index = require.resolve('undici');
  await import('../../agent/agent.js');
  const loaded = Object.keys(require.cache).filter((f) => f.includes('/node_modules/undici/'));
  t.true(
    loaded.some((f) => f.endsWith('/lib/dispatcher/pool.js')),
    "the agent loads undici's Pool",
  );
  t.false(loaded.includes(index), `undici's index was loaded: ${index}`);
  t.false(
    loaded.some((f) => f.includes('/lib/web/')),
    "a module of undici's fetch/WebSocket side was loaded",
  );
});

test.serial('the deep-imported Pool and Client are the classes undici exports (an upgrade that moves them fails here)', (t) => {
  const undici = require('undici') as typeof import('undici');
  t.is(Pool, undici.Pool);
  t.is(Client, undici.Client);
});
