// The image's contents, without a Docker engine: scripts/production-tree.sh assembles into a
// temp dir exactly the tree deploy/image/Dockerfile copies into the image (dist without
// tests, production node_modules, the addon, the eBPF objects, the CNI plugin), and nodemesh
// runs from that tree alone — `--version`, `check --pre`, and a lab whose control plane and
// agents are the tree's own processes, serving meshed traffic, with `check` ✔. Anything the
// CLI, the agent or the control plane reads at run time that the image lacks fails here.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packagePath } from '../../common/paths.js';
import { canRunPrivileged, run } from '../helpers/privileged.js';

const LAB = 'dp-image';
const FIXTURE = packagePath('test', 'fixtures', 'mesh-basic');

interface LabStatus {
  processes: { role: string; name: string; pid: number }[];
}

if (canRunPrivileged('the image production tree')) {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-image-tree-'));
  // the tree's own CLI, with nothing of the checkout on its paths
  const cli = (args: string[]) =>
    run(process.execPath, [path.join(tree, 'bin', 'nodemesh.js'), ...args], { ...process.env, NO_COLOR: '1', NODE_PATH: '' });

  test.before(() => {
    fs.rmSync(tree, { recursive: true, force: true });
    const r = spawnSync('bash', [packagePath('scripts', 'production-tree.sh'), tree], { encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) throw new Error(`scripts/production-tree.sh failed (${r.status}): ${r.stderr}`);
  });
  test.after.always(async () => {
    if (fs.existsSync(path.join(tree, 'bin', 'nodemesh.js'))) await cli(['lab', 'down', '--name', LAB]);
    fs.rmSync(tree, { recursive: true, force: true });
  });

  test.serial('the tree holds what the image ships and nothing of the build: no tests, no sources, no devDependencies', (t) => {
    for (const f of [
      'package.json',
      'REVISION',
      'bin/nodemesh.js',
      'dist/cli/main.js',
      'dist/agent/agent.js',
      'dist/control/control-plane.js',
      'control/api/discovery.proto',
      'build/Release/nodemesh_native.node',
      'build/bpf/redirect.bpf.o',
      'build/bpf/inbound.bpf.o',
      'build/cni/nodemesh-cni',
      'node_modules/@kubernetes/client-node/package.json',
      'node_modules/@grpc/grpc-js/package.json',
    ]) {
      t.true(fs.existsSync(path.join(tree, f)), `${f} in the tree`);
    }
    t.is(fs.statSync(path.join(tree, 'build/cni/nodemesh-cni')).mode & 0o111, 0o111, 'the CNI plugin executable');
    for (const f of [
      'dist/test',
      'test',
      'agent',
      'native',
      'bpf',
      'cni',
      'tsconfig.json',
      '.git',
      'node_modules/typescript',
      'node_modules/ava',
      'node_modules/cmake-js',
      'node_modules/@stryker-mutator/core',
      'node_modules/kubernetes-models',
    ]) {
      t.false(fs.existsSync(path.join(tree, f)), `${f} not in the tree`);
    }
    const ts = spawnSync('find', [tree, '-path', `${tree}/node_modules`, '-prune', '-o', '-name', '*.ts', '-print'], {
      encoding: 'utf8',
    }).stdout.trim();
    t.is(ts, '', 'no TypeScript sources');
  });

  test.serial('`nodemesh --version` from the tree: the package version and the revision it was built from', async (t) => {
    const r = await cli(['--version']);
    t.is(r.code, 0, r.stderr);
    const pkg = JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')) as { version: string };
    const revision = fs.readFileSync(path.join(tree, 'REVISION'), 'utf8').trim();
    t.regex(revision, /^[0-9a-f]{12}(-dirty)?$/);
    t.is(r.stdout, `nodemesh ${pkg.version} (git ${revision}, node ${process.version})\n`);
  });

  test.serial('`nodemesh check --pre` from the tree: this node passes, the eBPF objects found in the tree', async (t) => {
    const r = await cli(['check', '--pre', '-o', 'json']);
    const checks = (JSON.parse(r.stdout) as { checks: { name: string; ok: boolean }[] }).checks;
    t.deepEqual(
      checks.filter((c) => !c.ok),
      [],
      r.stdout,
    );
    t.true(checks.some((c) => c.name === 'eBPF objects built' && c.ok));
    t.is(r.code, 0);
  });

  test.serial(
    "a lab from the tree: the control plane and the agents are the tree's processes, a meshed pod reaches a Service through them, `check` ✔",
    async (t) => {
      const up = await cli(['lab', 'up', '-f', FIXTURE, '--name', LAB, '--quiet']);
      t.is(up.code, 0, up.stderr);
      const status = JSON.parse((await cli(['lab', 'status', '--name', LAB, '-o', 'json'])).stdout) as LabStatus;
      const roles = status.processes.map((p) => p.role);
      t.true(roles.includes('control') && roles.includes('agent'), JSON.stringify(status.processes));
      for (const p of status.processes.filter((q) => q.role === 'control' || q.role === 'agent')) {
        // the supervisor and its child: whichever is listed, its command line runs the tree's files
        const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0');
        t.true(
          cmdline.some((a) => a.startsWith(tree + path.sep)),
          `${p.role} ${p.name} runs from the tree: ${cmdline.join(' ')}`,
        );
        t.false(
          cmdline.some((a) => a.startsWith(packagePath() + path.sep)),
          `${p.role} ${p.name} runs nothing of the checkout`,
        );
      }
      const res = await cli([
        'lab',
        'exec',
        '--name',
        LAB,
        'shop/client',
        '--',
        'curl',
        '-sS',
        '--max-time',
        '5',
        'http://web.shop:80/hello',
      ]);
      t.is(res.code, 0, res.stderr);
      t.like(JSON.parse(res.stdout), { pod: 'web-1', path: '/hello' });
      const check = await cli(['check', '--name', LAB, '-o', 'json']);
      const checks = (JSON.parse(check.stdout) as { checks: { name: string; ok: boolean }[] }).checks;
      t.deepEqual(
        checks.filter((c) => !c.ok),
        [],
        check.stdout,
      );
      t.true(checks.some((c) => /^agent .* ready$/.test(c.name) && c.ok));
      t.is(check.code, 0);
      const down = await cli(['lab', 'down', '--name', LAB]);
      t.is(down.code, 0, down.stderr);
    },
  );
}
