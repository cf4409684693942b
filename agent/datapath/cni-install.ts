// Installs the chained CNI plugin (cni/nodemesh-cni.c) on a node, as istio-cni's install-cni
// does: the binary into the host's CNI bin dir, our entry at the end of the chain of the
// config the runtime uses (cni-conflist.ts says which), and keeps both there while it runs —
// another CNI rewriting its config (Calico's and Flannel's installers do on restart and
// upgrade) is noticed by watching the dirs and chained again. Uninstall (SIGTERM of `nodemesh
// cni install`, or `nodemesh cni uninstall`) puts the original config back byte for byte.
//
// - The original bytes (and mode) are kept in the state dir (a hostPath that outlives the
//   pod, /var/lib/nodemesh/cni) before the chained config is written, so a crash between the
//   two loses nothing. A config rewritten by another CNI is the new original.
// - Uninstall: when the file is still exactly what we wrote, the original goes back as it
//   was (a converted `.conf` too, and the `.conflist` we made is removed); when someone changed
//   it since, only our entry is taken out (their change is kept, the formatting is ours).
// - Every write is a temp file in the same dir renamed over the target: the runtime never
//   reads half a config. Temp names start with `.`, which no runtime loads.
// - Idempotent: a run that finds everything in place writes nothing, so our own writes
//   (which the watch sees) settle after one more run.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import {
  CNI_PLUGIN_TYPE,
  chainPlugin,
  chainedFileName,
  isChained,
  isConfigFile,
  mentionsPlugin,
  primaryConfigFile,
  unchainPlugin,
  type ChainedPluginConfig,
} from './cni-conflist.js';

const log = logger('agent/cni-install');

export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CNI_STATE_DIR = '/var/lib/nodemesh/cni';
const STATE_FILE = 'chained.json';
/** a watch event starts a run this long after the first of a burst (a CNI writes several files) */
const SETTLE_MS = 100;
/** the safety net under the watch (a dir replaced under its watch sends no more events) */
const RESYNC_MS = 60_000;

export interface CniInstallOptions {
  /** the host's CNI config dir, as mounted (/etc/cni/net.d) */
  confDir: string;
  /** the host's CNI bin dir, as mounted (/opt/cni/bin) */
  binDir: string;
  /** the plugin executable to copy (build/cni/nodemesh-cni) */
  pluginBinary: string;
  /** where the original config is kept until uninstall */
  stateDir: string;
  /** our entry in the chain (type is always nodemesh-cni) */
  plugin?: Omit<ChainedPluginConfig, 'type'>;
}

/** What was chained: kept in the state dir. */
interface ChainState {
  /** the original config's file name */
  file: string;
  mode: number;
  /** its bytes, base64 */
  original: string;
  /** the file we wrote (the same name, or X.conflist for X.conf) */
  written: string;
  /** sha256 of what we wrote */
  writtenSha256: string;
}

export type InstallOutcome = { outcome: 'chained' | 'unchanged'; file: string } | { outcome: 'no-config' };
export type UninstallOutcome = { config: 'restored' | 'unchained' | 'untouched'; file?: string; binaryRemoved: boolean };

function pluginEntry(o: CniInstallOptions): ChainedPluginConfig {
  return { type: CNI_PLUGIN_TYPE, ...o.plugin };
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes through a temp file renamed over the target, so no reader sees half of it. */
async function writeAtomically(file: string, data: Buffer | string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.nodemesh-tmp`);
  try {
    await fsp.writeFile(tmp, data, { mode });
    await fsp.chmod(tmp, mode); // writeFile's mode goes through the umask
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

async function readState(o: CniInstallOptions): Promise<ChainState | undefined> {
  const b = await readIfExists(path.join(o.stateDir, STATE_FILE));
  if (!b) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as ChainState;
  } catch {
    log.warn(
      { file: path.join(o.stateDir, STATE_FILE) },
      'the kept original CNI config is unreadable; uninstall will only take our entry out',
    );
    return undefined;
  }
}

async function writeState(o: CniInstallOptions, s: ChainState): Promise<void> {
  await fsp.mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  await writeAtomically(path.join(o.stateDir, STATE_FILE), JSON.stringify(s), 0o600);
}

async function requireDir(dir: string, what: string): Promise<void> {
  const st = await fsp.stat(dir).catch(() => undefined);
  if (!st?.isDirectory())
    throw new NodemeshError('NM_ERR_CNI_INSTALL', `${what} ${dir} is not a directory: mount the host's dir there (hostPath)`);
}

/** Copies the plugin into the bin dir unless the same bytes are there already. */
async function installBinary(o: CniInstallOptions): Promise<boolean> {
  const want = await readIfExists(o.pluginBinary);
  if (!want)
    throw new NodemeshError(
      'NM_ERR_CNI_INSTALL',
      `the CNI plugin ${o.pluginBinary} is missing: build it (cmake, build/cni/nodemesh-cni) or give --plugin`,
    );
  const target = path.join(o.binDir, CNI_PLUGIN_TYPE);
  const have = await readIfExists(target);
  if (have && have.equals(want) && ((await fsp.stat(target)).mode & 0o777) === 0o755) return false;
  await writeAtomically(target, want, 0o755);
  return true;
}

/**
 * Puts back what `s` kept: byte for byte if the file is still ours, else takes our entry out.
 * `originalRewritten`: another CNI has written the original (a `.conf` we had converted) again,
 * which is newer than what we kept: only our conflist goes.
 */
async function restoreConfig(o: CniInstallOptions, s: ChainState, originalRewritten = false): Promise<UninstallOutcome['config']> {
  const writtenPath = path.join(o.confDir, s.written);
  const now = await readIfExists(writtenPath);
  if (now && sha256(now) === s.writtenSha256) {
    if (!originalRewritten) await writeAtomically(path.join(o.confDir, s.file), Buffer.from(s.original, 'base64'), s.mode);
    if (s.written !== s.file) await fsp.rm(writtenPath, { force: true });
    return 'restored';
  }
  if (now && mentionsPlugin(s.written, now.toString('utf8'))) {
    await writeAtomically(writtenPath, unchainPlugin(s.written, now.toString('utf8')), (await fsp.stat(writtenPath)).mode & 0o777);
    return 'unchained';
  }
  return 'untouched';
}

/** Installs the binary and chains our entry into the runtime's config; writes nothing when both are in place. */
export async function installCni(o: CniInstallOptions): Promise<InstallOutcome> {
  await requireDir(o.confDir, 'the CNI config dir');
  await requireDir(o.binDir, 'the CNI bin dir');
  if (await installBinary(o)) log.info({ dir: o.binDir }, 'CNI plugin binary installed');
  const file = primaryConfigFile(await fsp.readdir(o.confDir));
  // no config yet: the cluster's own CNI has not installed itself; the watch sees it come
  if (!file) return { outcome: 'no-config' };
  const full = path.join(o.confDir, file);
  const bytes = (await readIfExists(full)) ?? Buffer.alloc(0);
  const text = bytes.toString('utf8');
  const plugin = pluginEntry(o);
  const state = await readState(o);
  if (isChained(file, text, plugin)) return { outcome: 'unchanged', file };
  // a new first file (another CNI installed before the one we chained): leave the old one as it was
  if (state && state.written !== file) await restoreConfig(o, state, state.file === file);
  // the file as found is the original: a rewrite by another CNI replaces what we kept, unless
  // it only changed our entry (then what we kept is still the original)
  const original = state?.written === file && mentionsPlugin(file, text) ? state : undefined;
  const chained = chainPlugin(file, text, plugin);
  const written = chainedFileName(file);
  const mode = original?.mode ?? (await fsp.stat(full)).mode & 0o777;
  await writeState(o, {
    file: original?.file ?? file,
    mode,
    original: original?.original ?? bytes.toString('base64'),
    written,
    writtenSha256: sha256(chained),
  });
  await writeAtomically(path.join(o.confDir, written), chained, mode);
  if (written !== file) await fsp.rm(full, { force: true });
  log.info({ file: written, from: file }, 'nodemesh-cni chained into the CNI config');
  return { outcome: 'chained', file: written };
}

/** Puts the original config back and removes the binary. */
export async function uninstallCni(o: CniInstallOptions): Promise<UninstallOutcome> {
  const state = await readState(o);
  let config: UninstallOutcome['config'] = 'untouched';
  let file: string | undefined;
  if (state) {
    config = await restoreConfig(o, state);
    file = state.file;
  } else {
    // nothing kept (the state dir lost): take our entry out of whichever config has it
    const names = (await fsp.readdir(o.confDir).catch(() => [] as string[])).filter(isConfigFile);
    for (const name of names) {
      const p = path.join(o.confDir, name);
      const text = (await readIfExists(p))?.toString('utf8');
      if (text === undefined || !safeMentions(name, text)) continue;
      await writeAtomically(p, unchainPlugin(name, text), (await fsp.stat(p)).mode & 0o777);
      config = 'unchained';
      file = name;
    }
  }
  await fsp.rm(path.join(o.stateDir, STATE_FILE), { force: true });
  const bin = path.join(o.binDir, CNI_PLUGIN_TYPE);
  const binaryRemoved = fs.existsSync(bin);
  await fsp.rm(bin, { force: true });
  log.info({ config, file, binaryRemoved }, 'nodemesh-cni uninstalled');
  return { config, ...(file ? { file } : {}), binaryRemoved };
}

function safeMentions(name: string, text: string): boolean {
  try {
    return mentionsPlugin(name, text);
  } catch {
    return false; // not ours to fix
  }
}

/**
 * `installCni` kept true while it runs: a watch on both dirs (and a slow resync) runs it
 * again after any change. Errors are logged and counted, never fatal: a broken config written
 * by another CNI is retried when it changes again.
 */
export class CniInstaller {
  /** runs that had to write (the first install, then every restoration) */
  chainedCount = 0;
  errorCount = 0;
  private watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly opts: CniInstallOptions) {}

  /** Installs once (rejects if that fails: a misconfigured installer should not look alive), then watches. */
  async start(): Promise<InstallOutcome> {
    const first = await installCni(this.opts);
    if (first.outcome === 'chained') this.chainedCount++;
    for (const dir of [this.opts.confDir, this.opts.binDir]) {
      const w = fs.watch(dir, { persistent: true }, () => this.schedule());
      w.on('error', (err) => {
        log.warn({ err, dir }, 'watching the CNI dir failed; the periodic resync remains');
        this.errorCount++;
      });
      this.watchers.push(w);
    }
    this.resync = setInterval(() => this.schedule(), RESYNC_MS);
    this.resync.unref();
    return first;
  }

  /** Called after every run (tests wait on it instead of sleeping). */
  onRun(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, SETTLE_MS);
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const r = await installCni(this.opts);
          if (r.outcome === 'chained') {
            this.chainedCount++;
            log.warn({ file: r.file }, 'the CNI config had lost nodemesh-cni (rewritten by another CNI?): chained again');
          }
        } catch (err) {
          this.errorCount++;
          log.error({ err }, 'keeping nodemesh-cni chained failed; retried on the next change');
        }
      } while (this.again && !this.closed);
    })();
    await this.running;
    this.running = undefined;
    for (const f of this.listeners) f();
  }

  /** Stops watching; with `uninstall`, puts the original config back and removes the binary. */
  async close(opts: { uninstall: boolean }): Promise<UninstallOutcome | undefined> {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.resync);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    await this.running;
    return opts.uninstall ? uninstallCni(this.opts) : undefined;
  }
}
