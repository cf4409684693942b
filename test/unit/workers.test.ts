// The proxy workers' pieces that need no processes: the default worker count from a cgroup's
// cpu.max, and a worker's identities (pushed by the primary, asked of it when missing).
import test from 'ava';
import os from 'node:os';
import { cpuMaxCores, defaultWorkerCount } from '../../agent/workers/worker-count.js';
import { RemoteIdentity } from '../../agent/workers/remote-identity.js';
import type { WorkloadCertificate } from '../../agent/identity/identity.js';

test('cpu.max: "max" is no limit; a quota is rounded up to whole cores, never below one', (t) => {
  t.is(cpuMaxCores('max 100000\n'), undefined);
  t.is(cpuMaxCores('200000 100000'), 2);
  t.is(cpuMaxCores('150000 100000'), 2);
  t.is(cpuMaxCores('50000 100000'), 1);
  t.is(cpuMaxCores('400000 200000'), 2);
  t.is(cpuMaxCores('garbage'), undefined);
});

test('the default worker count is between one and the CPUs this process may use', (t) => {
  const n = defaultWorkerCount();
  t.true(n >= 1 && n <= os.availableParallelism(), `${n}`);
});

const cert = (spiffeId: string, notAfter: Date): WorkloadCertificate => ({ spiffeId, certChainPem: `chain of ${spiffeId}`, keyPem: 'key', notBefore: new Date(0), notAfter });
const later = () => new Date(Date.now() + 3_600_000);

test('a worker serves pushed certificates itself and asks the primary for one it lacks or that expired', async (t) => {
  const asked: [number, string][] = [];
  const id = new RemoteIdentity((n, s) => asked.push([n, s]));
  id.update({ certificates: [cert('spiffe://td/ns/a/sa/a', later()), cert('spiffe://td/ns/b/sa/old', new Date(Date.now() - 1000))], trustBundle: ['root'] });
  t.deepEqual(id.trustBundle(), ['root']);
  t.is((await id.certificate('spiffe://td/ns/a/sa/a')).certChainPem, 'chain of spiffe://td/ns/a/sa/a');
  t.deepEqual(asked, []);
  const missing = id.certificate('spiffe://td/ns/c/sa/c');
  const expired = id.certificate('spiffe://td/ns/b/sa/old');
  t.deepEqual(asked.map(([, s]) => s), ['spiffe://td/ns/c/sa/c', 'spiffe://td/ns/b/sa/old']);
  id.answered(asked[0]![0], cert('spiffe://td/ns/c/sa/c', later()), undefined);
  id.answered(asked[1]![0], undefined, 'the CA refused');
  t.is((await missing).spiffeId, 'spiffe://td/ns/c/sa/c');
  await t.throwsAsync(expired, { message: 'the CA refused' });
  // the answered one is kept: no second question
  await id.certificate('spiffe://td/ns/c/sa/c');
  t.is(asked.length, 2);
});

test('closing a worker fails the questions still open', async (t) => {
  const id = new RemoteIdentity(() => {});
  const p = id.certificate('spiffe://td/ns/a/sa/a');
  id.close();
  await t.throwsAsync(p, { message: /closing/ });
});
