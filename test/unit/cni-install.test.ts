// The CNI installer (agent/datapath/cni-install.ts, `nodemesh cni install|uninstall`) on temp
// dirs standing for a node's /etc/cni/net.d and /opt/cni/bin, with configs shaped as Calico's
// and Flannel's installers write them: nodemesh-cni goes last in the chain and nothing else
// changes; a second run writes nothing; a rewrite by the other CNI is chained again; uninstall
// (explicit, or SIGTERM of the real CLI process) leaves the original bytes.
import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CniInstaller, installCni, uninstallCni, type CniInstallOptions } from '../../agent/datapath/cni-install.js';
import { packagePath } from '../../common/paths.js';
import { eventually } from '../helpers/eventually.js';

// as calico-node's install writes it (tabs, its own key order)
const CALICO = `{
\t"name": "k8s-pod-network",
\t"cniVersion": "0.3.1",
\t"plugins": [
\t\t{
\t\t\t"type": "calico",
\t\t\t"log_level": "info",
\t\t\t"datastore_type": "kubernetes",
\t\t\t"nodename": "node-a",
\t\t\t"mtu": 0,
\t\t\t"ipam": {"type": "calico-ipam"},
\t\t\t"policy": {"type": "k8s"},
\t\t\t"kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}
\t\t},
\t\t{"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
\t\t{"type": "bandwidth", "capabilities": {"bandwidth": true}}
\t]
}`;
// as kube-flannel's install-cni copies its cni-conf.json
const FLANNEL_LIST = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`;
// an older single-plugin Flannel .conf, CRLF line ends
const FLANNEL_CONF =
  '{\r\n  "name": "cbr0",\r\n  "cniVersion": "0.3.1",\r\n  "type": "flannel",\r\n  "delegate": {"isDefaultGateway": true}\r\n}\r\n';
const LOOPBACK = '{"cniVersion": "0.3.1", "name": "lo", "type": "loopback"}';

interface Node {
  opts: CniInstallOptions;
  conf(name: string): string;
  exists(name: string): boolean;
  write(name: string, text: string): void;
  listing(): string[];
}

function node(t: { teardown(f: () => void): void }, files: Record<string, string>): Node {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nodemesh-cni-install-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const confDir = path.join(root, 'etc-cni-net.d');
  const binDir = path.join(root, 'opt-cni-bin');
  fs.mkdirSync(confDir);
  fs.mkdirSync(binDir);
  fs.writeFileSync(path.join(binDir, 'calico'), 'calico binary');
  const pluginBinary = path.join(root, 'nodemesh-cni');
  fs.writeFileSync(pluginBinary, '#!/bin/sh\necho plugin\n', { mode: 0o700 });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(confDir, name), text, { mode: 0o644 });
  return {
    opts: {
      confDir,
      binDir,
      pluginBinary,
      stateDir: path.join(root, 'var-lib-nodemesh-cni'),
      plugin: { agentSocket: '/run/nodemesh/agent/cni.sock' },
    },
    conf: (name) => fs.readFileSync(path.join(confDir, name), 'utf8'),
    exists: (name) => fs.existsSync(path.join(confDir, name)),
    write: (name, text) => {
      // as another CNI's installer does: a temp file renamed over the config
      fs.writeFileSync(path.join(confDir, `.${name}.other-tmp`), text);
      fs.renameSync(path.join(confDir, `.${name}.other-tmp`), path.join(confDir, name));
    },
    listing: () => fs.readdirSync(confDir).sort(),
  };
}

const pluginsOf = (text: string) => (JSON.parse(text) as { plugins: { type: string }[] }).plugins;
const OURS = { type: 'nodemesh-cni', agentSocket: '/run/nodemesh/agent/cni.sock' };

test('chains into a Calico-like conflist: nodemesh-cni last, every other plugin and key as it was; the binary installed 0755', async (t) => {
  const n = node(t, { '10-calico.conflist': CALICO, 'calico-kubeconfig': 'kubeconfig', '99-loopback.conf': LOOPBACK });
  const r = await installCni(n.opts);
  t.deepEqual(r, { outcome: 'chained', file: '10-calico.conflist' });
  const before = JSON.parse(CALICO) as Record<string, unknown>;
  const after = JSON.parse(n.conf('10-calico.conflist')) as Record<string, unknown>;
  t.deepEqual(Object.keys(after), Object.keys(before), 'the same keys in the same order');
  t.deepEqual({ ...after, plugins: undefined }, { ...before, plugins: undefined });
  t.deepEqual(pluginsOf(n.conf('10-calico.conflist')), [...(before.plugins as unknown[]), OURS]);
  t.is(n.conf('99-loopback.conf'), LOOPBACK, "only the first config by name is the runtime's");
  t.is(n.conf('calico-kubeconfig'), 'kubeconfig');
  const bin = path.join(n.opts.binDir, 'nodemesh-cni');
  t.is(fs.readFileSync(bin, 'utf8'), fs.readFileSync(n.opts.pluginBinary, 'utf8'));
  t.is(fs.statSync(bin).mode & 0o777, 0o755);
  t.is(fs.statSync(path.join(n.opts.confDir, '10-calico.conflist')).mode & 0o777, 0o644, 'the config keeps its mode');
  t.deepEqual(n.listing(), ['10-calico.conflist', '99-loopback.conf', 'calico-kubeconfig'], 'no temp file left');
});

test('chains into a Flannel-like conflist without changing the rest', async (t) => {
  const n = node(t, { '10-flannel.conflist': FLANNEL_LIST });
  await installCni(n.opts);
  const after = JSON.parse(n.conf('10-flannel.conflist')) as { plugins: unknown[] };
  const before = JSON.parse(FLANNEL_LIST) as { plugins: unknown[] };
  t.deepEqual(after, { ...before, plugins: [...before.plugins, OURS] });
});

test('a single-plugin .conf becomes a .conflist (name and cniVersion on the list); uninstall puts the .conf back byte for byte', async (t) => {
  const n = node(t, { '10-flannel.conf': FLANNEL_CONF });
  t.deepEqual(await installCni(n.opts), { outcome: 'chained', file: '10-flannel.conflist' });
  t.false(n.exists('10-flannel.conf'), 'the .conf is replaced: the runtime would pick it first');
  t.deepEqual(JSON.parse(n.conf('10-flannel.conflist')), {
    cniVersion: '0.3.1',
    name: 'cbr0',
    plugins: [{ type: 'flannel', delegate: { isDefaultGateway: true } }, OURS],
  });
  const u = await uninstallCni(n.opts);
  t.like(u, { config: 'restored', binaryRemoved: true });
  t.deepEqual(n.listing(), ['10-flannel.conf']);
  t.is(n.conf('10-flannel.conf'), FLANNEL_CONF);
});

test('a single-plugin .json is converted the same way (runtimes read only .conflist files as lists)', async (t) => {
  const n = node(t, { '10-bridge.json': LOOPBACK });
  t.deepEqual(await installCni(n.opts), { outcome: 'chained', file: '10-bridge.conflist' });
  t.deepEqual(n.listing(), ['10-bridge.conflist']);
  t.deepEqual(JSON.parse(n.conf('10-bridge.conflist')), { cniVersion: '0.3.1', name: 'lo', plugins: [{ type: 'loopback' }, OURS] });
  await uninstallCni(n.opts);
  t.deepEqual(n.listing(), ['10-bridge.json']);
  t.is(n.conf('10-bridge.json'), LOOPBACK);
});

test('idempotent: a second install writes nothing (same bytes, same inode, same listing)', async (t) => {
  const n = node(t, { '10-calico.conflist': CALICO });
  await installCni(n.opts);
  const file = path.join(n.opts.confDir, '10-calico.conflist');
  const first = {
    text: n.conf('10-calico.conflist'),
    ino: fs.statSync(file).ino,
    bin: fs.statSync(path.join(n.opts.binDir, 'nodemesh-cni')).ino,
  };
  t.deepEqual(await installCni(n.opts), { outcome: 'unchanged', file: '10-calico.conflist' });
  t.deepEqual(await installCni(n.opts), { outcome: 'unchanged', file: '10-calico.conflist' });
  t.deepEqual(
    { text: n.conf('10-calico.conflist'), ino: fs.statSync(file).ino, bin: fs.statSync(path.join(n.opts.binDir, 'nodemesh-cni')).ino },
    first,
  );
  t.is(pluginsOf(n.conf('10-calico.conflist')).filter((p) => p.type === 'nodemesh-cni').length, 1);
  t.deepEqual(n.listing(), ['10-calico.conflist']);
});

test('uninstall leaves the original conflist byte for byte (tabs, key order, no final newline) and removes the binary', async (t) => {
  const n = node(t, { '10-calico.conflist': CALICO, '99-loopback.conf': LOOPBACK });
  await installCni(n.opts);
  await installCni(n.opts);
  t.not(n.conf('10-calico.conflist'), CALICO);
  t.like(await uninstallCni(n.opts), { config: 'restored', file: '10-calico.conflist', binaryRemoved: true });
  t.is(n.conf('10-calico.conflist'), CALICO);
  t.is(n.conf('99-loopback.conf'), LOOPBACK);
  t.deepEqual(fs.readdirSync(n.opts.binDir), ['calico'], "the other plugins' binaries stay");
  t.deepEqual(fs.readdirSync(n.opts.stateDir), [], 'nothing kept once uninstalled');
  t.like(await uninstallCni(n.opts), { config: 'untouched', binaryRemoved: false }, 'a second uninstall changes nothing');
  t.is(n.conf('10-calico.conflist'), CALICO);
});

test('restores itself when the other CNI rewrites its config, and uninstall then gives back the rewritten one', async (t) => {
  const n = node(t, { '10-calico.conflist': CALICO });
  const installer = new CniInstaller(n.opts);
  t.teardown(() => installer.close({ uninstall: false }));
  await installer.start();
  t.is(installer.chainedCount, 1);
  // calico-node restarts and writes its config again, without us
  n.write('10-calico.conflist', CALICO);
  await eventually(
    () => installer.chainedCount === 2 && pluginsOf(n.conf('10-calico.conflist')).at(-1)?.type === 'nodemesh-cni',
    10_000,
    'chained again after the rewrite',
  );
  // an upgrade of Calico changes its config (a new MTU): that is the original from now on
  const upgraded = CALICO.replace('"mtu": 0', '"mtu": 1450');
  n.write('10-calico.conflist', upgraded);
  await eventually(
    () =>
      installer.chainedCount === 3 &&
      n.conf('10-calico.conflist').includes('1450') &&
      pluginsOf(n.conf('10-calico.conflist')).at(-1)?.type === 'nodemesh-cni',
    10_000,
    'chained into the upgraded config',
  );
  t.is(installer.errorCount, 0);
  t.like(await installer.close({ uninstall: true }), { config: 'restored' });
  t.is(n.conf('10-calico.conflist'), upgraded);
});

test('a removed binary is put back; a config that appears later (the cluster CNI installs after us) is chained', async (t) => {
  const n = node(t, {});
  const installer = new CniInstaller(n.opts);
  t.teardown(() => installer.close({ uninstall: false }));
  t.deepEqual(await installer.start(), { outcome: 'no-config' });
  n.write('10-flannel.conflist', FLANNEL_LIST);
  await eventually(
    () => n.exists('10-flannel.conflist') && pluginsOf(n.conf('10-flannel.conflist')).at(-1)?.type === 'nodemesh-cni',
    10_000,
    'the new config chained',
  );
  fs.rmSync(path.join(n.opts.binDir, 'nodemesh-cni'));
  await eventually(() => fs.existsSync(path.join(n.opts.binDir, 'nodemesh-cni')), 10_000, 'the binary put back');
  await installer.close({ uninstall: true });
  t.is(n.conf('10-flannel.conflist'), FLANNEL_LIST);
});

test('a config that is not JSON is an error naming the file, counted by the watcher, which keeps going and chains the fixed file', async (t) => {
  const n = node(t, { '10-calico.conflist': '{"plugins": [' });
  await t.throwsAsync(installCni(n.opts), { code: 'NM_ERR_CNI_INSTALL', message: /10-calico\.conflist: not JSON/ });
  t.is(n.conf('10-calico.conflist'), '{"plugins": [', 'left as it was');
  const installer = new CniInstaller(n.opts);
  t.teardown(() => installer.close({ uninstall: false }));
  await t.throwsAsync(installer.start(), { code: 'NM_ERR_CNI_INSTALL' });
  n.write('10-calico.conflist', CALICO);
  const again = new CniInstaller(n.opts);
  t.teardown(() => again.close({ uninstall: false }));
  await again.start();
  n.write('10-calico.conflist', '{"plugins": [');
  await eventually(() => again.errorCount > 0, 10_000, 'the broken rewrite counted');
  n.write('10-calico.conflist', CALICO);
  await eventually(() => pluginsOf(n.conf('10-calico.conflist')).at(-1)?.type === 'nodemesh-cni', 10_000, 'chained once fixed');
});

test('a new first config by name (another CNI installed): the old one is given back, the new one chained', async (t) => {
  const n = node(t, { '10-flannel.conflist': FLANNEL_LIST });
  await installCni(n.opts);
  fs.writeFileSync(path.join(n.opts.confDir, '05-cilium.conflist'), CALICO);
  t.deepEqual(await installCni(n.opts), { outcome: 'chained', file: '05-cilium.conflist' });
  t.is(n.conf('10-flannel.conflist'), FLANNEL_LIST);
  await uninstallCni(n.opts);
  t.is(n.conf('05-cilium.conflist'), CALICO);
  t.is(n.conf('10-flannel.conflist'), FLANNEL_LIST);
});

test('`nodemesh cni install` as a process: chains, and on SIGTERM puts the original back byte for byte', async (t) => {
  const n = node(t, { '10-calico.conflist': CALICO });
  const child = spawn(
    process.execPath,
    [
      packagePath('bin', 'nodemesh.js'),
      'cni',
      'install',
      '--cni-conf-dir',
      n.opts.confDir,
      '--cni-bin-dir',
      n.opts.binDir,
      '--state-dir',
      n.opts.stateDir,
      '--plugin',
      n.opts.pluginBinary,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await eventually(() => stderr.includes('watching the CNI dirs'), 20_000, 'the installer watching');
  t.is(pluginsOf(n.conf('10-calico.conflist')).at(-1)?.type, 'nodemesh-cni');
  child.kill('SIGTERM');
  t.is(await exited, 0, stderr);
  t.is(n.conf('10-calico.conflist'), CALICO);
  t.false(fs.existsSync(path.join(n.opts.binDir, 'nodemesh-cni')));
});
