// A real control plane on 127.0.0.1 for one test: its configuration files in a temporary
// directory, gRPC and admin on ephemeral ports, no process metrics, all gone with the test;
// and the first snapshot an agent receives from it over gRPC.
import type { ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { watchSnapshots } from '../../control/api/discovery-client.js';
import type { Snapshot } from '../../control/api/snapshot.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../control/control-plane.js';

/** A temporary directory holding `files` (name → text), removed with the test. */
export async function configDir(t: ExecutionContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

/** A control plane on loopback (`opts` over the defaults), closed with the test. */
export async function controlPlane(t: ExecutionContext, opts: Partial<ControlPlaneOptions> & { configDir: string }): Promise<ControlPlane> {
  const cp = await startControlPlane({ grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', processMetrics: false, ...opts });
  t.teardown(() => cp.close());
  return cp;
}

/** The first snapshot an agent of `node` receives from the discovery server at `address`. */
export function firstSnapshot(address: string, node = 'node-a', timeoutMs = 5000): Promise<Snapshot> {
  return new Promise<Snapshot>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no snapshot within ${timeoutMs / 1000} s`)), timeoutMs);
    const watch = watchSnapshots({
      address,
      node,
      onSnapshot: (s) => {
        clearTimeout(timer);
        watch.close();
        resolve(s);
      },
    });
  });
}
