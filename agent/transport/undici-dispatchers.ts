// undici's Pool and Client, loaded without undici's index. The index also loads fetch,
// WebSocket, EventSource, caches, cookies and the mock agents, none of which the agent uses:
// importing `undici` cost each agent ~3 MB of V8 heap and ~10 MB of RSS at start, for
// nothing (measured: `node -e "import('undici')"` against these two files). The deep paths
// are stable for the exact version package.json pins; test/unit/undici-dispatchers.test.ts
// checks that they are the very classes undici exports, so an upgrade that moves them fails
// there, not in a running agent.
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

export const Pool = require('undici/lib/dispatcher/pool') as typeof undici.Pool;
export type Pool = undici.Pool;
export const Client = require('undici/lib/dispatcher/client') as typeof undici.Client;
export type Client = undici.Client;
