// `nodemesh cni install` / `nodemesh cni uninstall`: the chained CNI plugin on a node
// (agent/datapath/cni-install.ts). In the DaemonSet `install` runs as the agent pod's
// `install-cni` container for as long as the pod lives: it chains the plugin, keeps it
// chained when another CNI rewrites its config, and on SIGTERM (the pod deleted) puts the
// original config back byte for byte. A separate container rather than the agent itself:
// it needs the host's CNI dirs and no capability, the agent needs capabilities and no CNI
// dir, and the plugin stays chained across an agent restart (the plugin then fails closed).
import {
  CniInstaller,
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CNI_CONF_DIR,
  DEFAULT_CNI_STATE_DIR,
  installCni,
  uninstallCni,
  type CniInstallOptions,
} from '../agent/datapath/cni-install.js';
import { packagePath } from '../common/paths.js';
import { logger } from '../common/log.js';
import type { Values } from './command-table.js';
import { untilSignal } from './signals.js';

const log = logger('cli/cni');

function options(v: Values): CniInstallOptions {
  const s = (name: string, env: string, dflt: string) => (typeof v[name] === 'string' ? (v[name] as string) : (process.env[env] ?? dflt));
  const plugin: CniInstallOptions['plugin'] = {};
  if (typeof v['agent-socket'] === 'string') plugin.agentSocket = v['agent-socket'];
  if (typeof v['exclude-namespaces'] === 'string')
    plugin.excludeNamespaces = v['exclude-namespaces']
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean);
  return {
    confDir: s('cni-conf-dir', 'NODEMESH_CNI_CONF_DIR', DEFAULT_CNI_CONF_DIR),
    binDir: s('cni-bin-dir', 'NODEMESH_CNI_BIN_DIR', DEFAULT_CNI_BIN_DIR),
    stateDir: s('state-dir', 'NODEMESH_CNI_STATE_DIR', DEFAULT_CNI_STATE_DIR),
    pluginBinary: typeof v.plugin === 'string' ? v.plugin : packagePath('build', 'cni', 'nodemesh-cni'),
    plugin,
  };
}

export async function runCniInstall(v: Values, out: NodeJS.WritableStream): Promise<number> {
  const opts = options(v);
  if (v.once === true) {
    const r = await installCni(opts);
    out.write(
      r.outcome === 'no-config'
        ? `no CNI config in ${opts.confDir} yet: nothing chained (the cluster's CNI installs one)\n`
        : `nodemesh-cni ${r.outcome === 'chained' ? 'chained into' : 'already chained in'} ${opts.confDir}/${r.file}\n`,
    );
    return 0;
  }
  const installer = new CniInstaller(opts);
  const first = await installer.start();
  log.info({ ...first, confDir: opts.confDir }, 'nodemesh-cni installed; watching the CNI dirs until SIGTERM');
  const sig = await untilSignal();
  const r = await installer.close({ uninstall: v['keep-on-exit'] !== true });
  log.info({ signal: sig, uninstall: r ?? 'kept' }, 'CNI installer stopped');
  return 0;
}

export async function runCniUninstall(v: Values, out: NodeJS.WritableStream): Promise<number> {
  const r = await uninstallCni(options(v));
  out.write(`CNI config ${r.config}${r.file ? ` (${r.file})` : ''}; plugin binary ${r.binaryRemoved ? 'removed' : 'was not installed'}\n`);
  return 0;
}
