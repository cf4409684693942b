// A control-plane replica that is not the leader waits for the leader's CA root
// (control/ca/ca-secret.ts). That wait is all its start-up has pending: the API server's
// connection idles, the clock's timers are unref'd. It runs here in a process of its own, as
// in the control plane, against the API-server stand-in, so that Node would end it with the
// wait unsettled (exit code 13) if the wait did not hold the event loop itself.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';

const CHILD = `
const { loadCaFromSecrets } = await import(process.env.CA_SECRET_MODULE);
const { KubeClient, loadKubeConfig } = await import(process.env.KUBE_CLIENT_MODULE);
const client = new KubeClient(loadKubeConfig({ kubeconfig: process.env.TEST_KUBECONFIG }).kc);
const started = Date.now();
try {
  await loadCaFromSecrets({
    client,
    namespace: 'nodemesh-system',
    isLeader: () => false,
    generate: async () => { throw new Error('a follower never generates'); },
    pollMs: 100,
    timeoutMs: 1500,
  });
  console.log(JSON.stringify({ outcome: 'material' }));
} catch (err) {
  console.log(JSON.stringify({ outcome: 'error', message: err.message, waitedMs: Date.now() - started }));
}
`;

test("a follower waiting for the leader's CA root, with nothing else pending, keeps running until the root comes or its deadline says why not", async (t) => {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-ca-wait-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: {
      ...process.env,
      CA_SECRET_MODULE: new URL('../../control/ca/ca-secret.js', import.meta.url).href,
      KUBE_CLIENT_MODULE: new URL('../../control/kube/kube-client.js', import.meta.url).href,
      TEST_KUBECONFIG: api.writeKubeconfig(dir),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
  t.teardown(() => clearTimeout(kill));
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  t.is(code, 0, `the replica's process ended with code ${code} (13: the wait left nothing holding the event loop)\n${err}`);
  const last = out.trim().split('\n').at(-1) ?? '{}';
  const result = JSON.parse(last) as { outcome?: string; message?: string; waitedMs?: number };
  t.is(result.outcome, 'error');
  t.regex(
    result.message ?? '',
    /no CA root after 2 s: neither Secret nodemesh-system\/cacerts .* nor nodemesh-system\/nodemesh-ca-secret exists, and no leader created one/,
  );
  t.true((result.waitedMs ?? 0) >= 1500, `it waited its whole deadline (${result.waitedMs} ms)`);
});
