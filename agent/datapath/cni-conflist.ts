// The CNI network configuration as the node's container runtime reads it, and nodemesh's
// plugin chained at its end. Pure functions over file names and text: the installer
// (cni-install.ts) does the file work.
//
// - Which file: libcni's ConfFiles — every `*.conf`, `*.conflist` and `*.json` of the dir,
//   sorted by name — and the runtime (containerd, CRI-O, the kubelet's dockershim) uses the
//   first. So we chain into that one only, as istio-cni does.
// - A `.conf` (or `.json`) holds one plugin: it becomes a `.conflist` ({cniVersion, name,
//   plugins: [the plugin, ours]}) of the same base name, the `.conf` removed.
// - The other plugins and keys are kept as they are (same JSON values, same order); only the
//   formatting is ours (two-space JSON). Byte for byte matters on uninstall: the installer
//   keeps the original bytes and puts them back.
import { NodemeshError } from '../../common/errors.js';

export const CNI_PLUGIN_TYPE = 'nodemesh-cni';
const CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'];

/** nodemesh's entry in the chain: what cni/nodemesh-cni.c reads besides type. */
export interface ChainedPluginConfig {
  type: typeof CNI_PLUGIN_TYPE;
  agentSocket?: string;
  timeoutSeconds?: number;
  excludeNamespaces?: string[];
}

/** The config file the runtime uses: the first CNI config file of the dir by name. */
export function primaryConfigFile(names: readonly string[]): string | undefined {
  return names.filter(isConfigFile).sort()[0];
}

export function isConfigFile(name: string): boolean {
  return !name.startsWith('.') && CONFIG_EXTENSIONS.some((ext) => name.endsWith(ext));
}

/**
 * Where the chained config is written: the same file for a `.conflist`, else `X.conflist`
 * for `X.conf` / `X.json` — the runtimes read only `.conflist` files as lists (containerd's
 * go-cni, CRI-O: any other extension is one plugin's config).
 */
export function chainedFileName(name: string): string {
  return name.endsWith('.conflist') ? name : name.replace(/\.(conf|json)$/, '.conflist');
}

type Json = Record<string, unknown>;

function parse(file: string, text: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new NodemeshError(
      'NM_ERR_CNI_INSTALL',
      `${file}: not JSON (${(err as Error).message}); the node's CNI config is broken, fix it before nodemesh chains into it`,
    );
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new NodemeshError('NM_ERR_CNI_INSTALL', `${file}: expected a JSON object (a CNI network configuration)`);
  return v as Json;
}

function pluginsOf(file: string, conf: Json): Json[] | undefined {
  if (conf.plugins === undefined) return undefined;
  if (!Array.isArray(conf.plugins) || conf.plugins.some((p) => !p || typeof p !== 'object' || Array.isArray(p)))
    throw new NodemeshError('NM_ERR_CNI_INSTALL', `${file}: plugins: expected a list of objects`);
  return conf.plugins as Json[];
}

/** Whether the config's chain already ends with exactly this entry. */
export function isChained(file: string, text: string, plugin: ChainedPluginConfig): boolean {
  const plugins = pluginsOf(file, parse(file, text));
  if (!plugins) return false;
  const ours = plugins.filter((p) => p.type === CNI_PLUGIN_TYPE);
  return ours.length === 1 && plugins.at(-1) === ours[0] && sameJson(ours[0], plugin);
}

/** Whether the config names our plugin anywhere in its chain. */
export function mentionsPlugin(file: string, text: string): boolean {
  const plugins = pluginsOf(file, parse(file, text));
  return (plugins ?? []).some((p) => p.type === CNI_PLUGIN_TYPE);
}

/**
 * The config with our plugin last in its chain (an older entry of ours dropped, so a changed
 * plugin config replaces it); a single-plugin `.conf` becomes a conflist.
 */
export function chainPlugin(file: string, text: string, plugin: ChainedPluginConfig): string {
  const conf = parse(file, text);
  const plugins = pluginsOf(file, conf);
  let out: Json;
  if (plugins) {
    out = { ...conf, plugins: [...plugins.filter((p) => p.type !== CNI_PLUGIN_TYPE), plugin] };
  } else {
    // a single plugin: its cniVersion and name go to the list, the rest is the plugin, as
    // libcni's ConfListFromConf does
    if (typeof conf.type !== 'string')
      throw new NodemeshError('NM_ERR_CNI_INSTALL', `${file}: neither plugins (a conflist) nor type (a single plugin's config)`);
    const { cniVersion, name, ...single } = conf;
    out = { ...(cniVersion !== undefined ? { cniVersion } : {}), ...(name !== undefined ? { name } : {}), plugins: [single, plugin] };
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** The config without our plugin (for an uninstall where the rest changed since we chained). */
export function unchainPlugin(file: string, text: string): string {
  const conf = parse(file, text);
  const plugins = pluginsOf(file, conf);
  if (!plugins) return text;
  return `${JSON.stringify({ ...conf, plugins: plugins.filter((p) => p.type !== CNI_PLUGIN_TYPE) }, null, 2)}\n`;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Json)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Json)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Json)[k], (b as Json)[k]));
}
