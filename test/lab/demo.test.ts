// `nodemesh demo --once` as a user runs it (the real binary, as root): one round of the sample
// application in a lab of its own, torn down after; its exit code says whether the traffic
// flowed through the mesh. With --multicluster, two clusters joined only by their east-west
// gateways, and exit 0 only if the client's requests crossed from cluster-a to cluster-b.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { packagePath } from '../../common/paths.js';
import { canRunPrivileged } from '../helpers/privileged.js';

const CLI = packagePath('bin', 'nodemesh.js');

/** The demo to its end: its exit code and what it printed (5 min: two labs up and down on a loaded machine). */
function demo(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'demo', '--once', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 300_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

if (canRunPrivileged('nodemesh demo')) {
  test.serial('demo --once: the sample application answers through the mesh, exit 0, and nothing of its lab is left', async (t) => {
    const r = await demo(['--name', 'dm-one']);
    t.is(r.code, 0, r.out.slice(-3000));
    t.false(existsSync('/run/nodemesh/labs/dm-one'), 'the lab is torn down');
  });

  test.serial('demo --multicluster --once: every request crosses from cluster-a to cluster-b through the east-west gateways, counted with both cluster names; exit 0, nothing left', async (t) => {
    const r = await demo(['--multicluster', '--name', 'dm-mc']);
    t.is(r.code, 0, r.out.slice(-3000));
    t.regex(r.out, /source_cluster=cluster-a destination_cluster=cluster-b: \d+/);
    t.regex(r.out, /OK: every request crossed from cluster-a to cluster-b through the east-west gateways/);
    for (const lab of ['dm-mc', 'dm-mc-cluster-a', 'dm-mc-cluster-b']) t.false(existsSync(`/run/nodemesh/labs/${lab}`), `lab ${lab} is torn down`);
  });
}
