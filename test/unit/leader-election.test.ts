// Leader election over the Lease nodemesh-control (control/kube/leader-election.ts) against
// the stand-in API server's coordination.k8s.io/v1 Leases (resourceVersion conflicts on
// create and update), time driven by a fake clock: client-go's 15 s / 10 s / 2 s, so a
// takeover is 15 s of the follower's own observation, never the holder's renewTime.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeClient, loadKubeConfig } from '../../control/kube/kube-client.js';
import { LeaderElector, type LeaderElectionOptions } from '../../control/kube/leader-election.js';
import { KubeApiServerStandIn } from '../helpers/kube-apiserver.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'nodemesh-system';
/** longer than a candidate's longest jittered wait (2 s × 2.2): every elector tries once per turn */
const TURN_MS = 4_500;

interface Env {
  api: KubeApiServerStandIn;
  clock: FakeClock;
  elector: (identity: string, o?: Partial<LeaderElectionOptions>) => LeaderElector;
}

async function env(t: ExecutionContext): Promise<Env> {
  const api = await KubeApiServerStandIn.start();
  const dir = await mkdtemp(path.join(tmpdir(), 'nm-leader-'));
  const client = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(dir) }).kc);
  const clock = new FakeClock();
  const electors: LeaderElector[] = [];
  t.teardown(async () => {
    for (const e of electors) await e.stop();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    api,
    clock,
    elector: (identity, o = {}) => {
      const e = new LeaderElector({ client, namespace: NS, identity, clock, ...o });
      electors.push(e);
      return e;
    },
  };
}

/** One step of time: every running elector's due attempt fires and completes. */
async function turn(clock: FakeClock, electors: LeaderElector[], ms = TURN_MS): Promise<void> {
  const before = electors.map((e) => e.attempts);
  clock.advance(ms);
  await eventually(() => electors.every((e, i) => e.attempts > before[i]!), 10_000, 'every elector\'s attempt');
}

function lease(api: KubeApiServerStandIn): { holderIdentity?: string; leaseTransitions?: number; leaseDurationSeconds?: number; renewTime?: string } {
  return (api.get('Lease', NS, 'nodemesh-control')?.spec ?? {}) as never;
}

test('two candidates: exactly one holds the Lease, the other follows while it is renewed', async (t) => {
  const { api, clock, elector } = await env(t);
  const a = elector('replica-a');
  const b = elector('replica-b');
  a.start();
  b.start();
  await turn(clock, [a, b], 0);
  t.is([a, b].filter((e) => e.isLeader()).length, 1);
  const leader = a.isLeader() ? a : b;
  const follower = leader === a ? b : a;
  t.is(lease(api).holderIdentity, leader.identity);
  t.is(lease(api).leaseDurationSeconds, 15);
  t.regex(lease(api).renewTime!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'a MicroTime, as the API server writes it');
  // a minute of renewals: the follower never takes over a lease that keeps changing
  for (let i = 0; i < 14; i++) await turn(clock, [a, b]);
  t.true(leader.isLeader());
  t.false(follower.isLeader());
  t.is(lease(api).holderIdentity, leader.identity);
  t.is(lease(api).leaseTransitions, 0);
});

test('a leader that stops renewing (dies) is replaced once the lease has not changed for its duration; the handover is counted', async (t) => {
  const { api, clock, elector } = await env(t);
  const a = elector('replica-a', { releaseOnStop: false });
  a.start();
  await turn(clock, [a], 0);
  t.true(a.isLeader());
  const b = elector('replica-b');
  b.start();
  await turn(clock, [b], 0);
  t.false(b.isLeader());
  await a.stop(); // no release: the Lease still names it, as after a kill -9
  t.is(lease(api).holderIdentity, 'replica-a');
  // still within 15 s of b's last observation of a change: b waits
  await turn(clock, [b], 4_500);
  await turn(clock, [b], 4_500);
  await turn(clock, [b], 4_500);
  t.false(b.isLeader());
  for (let i = 0; i < 3 && !b.isLeader(); i++) await turn(clock, [b]);
  t.true(b.isLeader());
  t.is(lease(api).holderIdentity, 'replica-b');
  t.is(lease(api).leaseTransitions, 1);
});

test('a leader that cannot renew within the renew deadline steps down, and leads again once it can', async (t) => {
  const { api, clock, elector } = await env(t);
  const stopped: string[] = [];
  const a = elector('replica-a', { onStoppedLeading: () => stopped.push('a') });
  a.start();
  await turn(clock, [a], 0);
  t.true(a.isLeader());
  api.failNext = 1_000_000; // the API server answers 500 to everything
  await turn(clock, [a], 2_000);
  t.true(a.isLeader(), 'one failed renewal is not yet the deadline');
  for (let i = 0; i < 5 && a.isLeader(); i++) await turn(clock, [a], 2_000);
  t.false(a.isLeader());
  t.deepEqual(stopped, ['a']);
  api.failNext = 0;
  await turn(clock, [a]);
  t.true(a.isLeader(), 'its own record: renewed at once');
});

test('a leader that stops releases the Lease: a follower takes over on its next try, not 15 s later', async (t) => {
  const { api, clock, elector } = await env(t);
  const a = elector('replica-a');
  a.start();
  await turn(clock, [a], 0);
  const b = elector('replica-b');
  b.start();
  await turn(clock, [b], 0);
  await a.stop();
  t.is(lease(api).holderIdentity, '');
  await turn(clock, [b]);
  t.true(b.isLeader());
  t.is(lease(api).holderIdentity, 'replica-b');
});

test('racing candidates for a free Lease: a write with a stale resourceVersion is refused (409), so only one wins', async (t) => {
  const { api, clock, elector } = await env(t);
  const candidates = ['r1', 'r2', 'r3', 'r4'].map((id) => elector(id));
  for (const c of candidates) c.start();
  await turn(clock, candidates, 0);
  for (let i = 0; i < 3; i++) await turn(clock, candidates);
  t.is(candidates.filter((c) => c.isLeader()).length, 1);
  t.is(lease(api).holderIdentity, candidates.find((c) => c.isLeader())!.identity);
  t.true(api.requests.filter((r) => r.startsWith('POST /apis/coordination.k8s.io/v1/namespaces/nodemesh-system/leases')).length >= 2, 'several creates raced');
});

test('timing that would let two leaders overlap is refused', (t) => {
  const client = {} as KubeClient;
  t.throws(() => new LeaderElector({ client, namespace: NS, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }), { message: /lease duration .* must be longer than the renew deadline/ });
  t.throws(() => new LeaderElector({ client, namespace: NS, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }), { message: /renew deadline .* must be longer than 1.2 × the retry period/ });
});
