// The embedded default config source: every *.yaml / *.yml under a directory (recursive),
// each a stream of YAML documents, watched for changes.
//
// Guarantees:
// - A file that is not valid YAML (or cannot be read) yields NM_ERR_CONFIG_YAML with its
//   line, and the documents last read successfully from that file stay in force: one typo
//   never removes the resources of a whole file.
// - A document that is not a Kubernetes object (a mapping with apiVersion, kind and
//   metadata.name) is reported on its own; the other documents of the file still apply.
// - If the directory itself cannot be listed (missing, remounted, permission), nothing
//   changes: the last listing stays in force and the error is reported.
// - Limits (model/limits.ts), each an NM_ERR_CONFIG_LIMIT naming the file and the limit: a
//   file over `fileBytes` is refused without being read (its size is known from stat); one
//   over `documentsPerFile` is refused as a whole (yaml-file.ts); a change that would bring
//   the resources in force over `resources` or `totalBytes` is not applied (the files that
//   changed keep what they had in force). A refused file keeps its last good documents, as a
//   file with a YAML error does; nothing of a refused file is ever applied in part.
// - Names starting with "." are skipped: a Kubernetes ConfigMap volume holds every file
//   twice (`..2024_01_01_00_00_00.1/x.yaml` and the `x.yaml` symlink to it), which would
//   otherwise make every resource conflict with itself.
//
// Change detection: a watcher on every directory the scan walked (fs.watch of the directory
// itself, one inotify watch: any entry created, written, renamed in or out, removed) triggers
// a scan after a debounce; each scan brings the set of watched directories up to date. A
// periodic rescan is the safety net for what inotify misses (NFS, watcher errors). A scan
// re-reads every file and re-parses only those whose bytes changed.
//
// Not Node's `recursive: true`: on Linux (Node 20) it watches each file by its inode and
// does not follow a file replaced by a rename, the way editors, kubectl cp and atomic
// writers save. From the second such save of one file on, the change waited for the
// periodic rescan (seconds; found by the config-convergence benchmark).
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { configLimits, formatBytes, LIMIT_FLAGS, type ConfigLimits } from '../model/limits.js';
import type { SourceDocument } from '../model/source-document.js';
import { parseYamlFileAsync } from './yaml-file.js';

export { parseYamlFile, type ParsedFile } from './yaml-file.js';

const log = logger('control/source-files');

export interface FileResult {
  file: string;
  /** the Kubernetes objects of the file in force; the last good ones when `error` is set */
  documents: SourceDocument[];
  /** the whole file failed (NM_ERR_CONFIG_YAML, NM_ERR_CONFIG_LIMIT) */
  error?: ConfigError;
  /** documents that are valid YAML but not Kubernetes objects */
  documentErrors: ConfigError[];
}

export interface SourceState {
  /** every file currently read, sorted by path */
  files: readonly FileResult[];
  /** the directory could not be listed: `files` is the last good listing */
  error?: ConfigError;
}

export interface FileSourceOptions {
  dir: string;
  /** quiet time after a change event before scanning (default 100 ms) */
  debounceMs?: number;
  /** periodic full rescan (default 5000 ms; 0 disables) */
  rescanMs?: number;
  /** called after a scan that changed anything (files, parse results, directory error) */
  onChange: (state: SourceState) => void;
  /** size and count limits (default: DEFAULT_CONFIG_LIMITS) */
  limits?: Partial<ConfigLimits>;
}

const YAML_FILE = /\.ya?ml$/i;
const MAX_DEPTH = 32;

interface CacheEntry {
  /** the file's text, or a signature of what was found instead (unreadable, too large) */
  text: string;
  /** the file's own result: its documents are the last good ones when `error` is set */
  result: FileResult;
  lastGood: SourceDocument[];
  /** what is in force from this file after the limits over all files (undefined: nothing yet) */
  inForce?: SourceDocument[];
  /** why inForce is not result.documents */
  limitError?: ConfigError;
}

/** Reads and watches a directory of YAML. */
export class FileSource {
  readonly dir: string;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private readonly onChange: (state: SourceState) => void;
  readonly limits: ConfigLimits;
  private cache = new Map<string, CacheEntry>();
  private dirError: ConfigError | undefined;
  /** one per directory walked by the last scan that could list the tree, and the root's */
  private readonly watchers = new Map<string, FSWatcher>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private queued: Promise<boolean> | undefined;
  private closed = false;
  /** watchers are kept once start() has scanned (scan() alone, as tests call it, watches nothing) */
  private started = false;

  constructor(opts: FileSourceOptions) {
    this.dir = path.resolve(opts.dir);
    this.debounceMs = opts.debounceMs ?? 100;
    this.rescanMs = opts.rescanMs ?? 5000;
    this.onChange = opts.onChange;
    this.limits = configLimits(opts.limits);
  }

  /** First scan (onChange is called even if the directory is empty), then watch. */
  async start(): Promise<void> {
    this.started = true;
    await this.scan(true);
    this.ensureWatcher();
    if (this.rescanMs > 0) {
      this.rescanTimer = setInterval(() => {
        this.ensureWatcher();
        void this.scan();
      }, this.rescanMs);
      this.rescanTimer.unref();
    }
  }

  state(): SourceState {
    const files = [...this.cache.values()]
      .map((e): FileResult => {
        const error = e.result.error ?? e.limitError;
        return { file: e.result.file, documents: e.inForce ?? [], documentErrors: e.result.documentErrors, ...(error ? { error } : {}) };
      })
      .sort((a, b) => cmp(a.file, b.file));
    return this.dirError ? { files, error: this.dirError } : { files };
  }

  /**
   * Scans now; resolves once the scan (and its onChange) is done, with whether anything
   * changed. Scans never overlap: a call during a scan runs one more scan after it.
   */
  scan(forceNotify = false): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (!this.running) {
      this.running = this.scanOnce(forceNotify).finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued ??= this.running.then(() => {
      this.queued = undefined;
      return this.scan(forceNotify);
    });
    return this.queued;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    clearTimeout(this.debounceTimer);
    clearInterval(this.rescanTimer);
  }

  private ensureWatcher(): void {
    this.watchDir(this.dir);
  }

  private watchDir(dir: string): void {
    if (this.watchers.has(dir) || this.closed) return;
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, () => this.changed());
    } catch (err) {
      log.debug({ dir, err: (err as Error).message }, 'cannot watch a config directory yet; relying on periodic rescans');
      return;
    }
    this.watchers.set(dir, w);
    w.on('error', (err) => {
      log.warn({ dir, err: err.message }, 'config directory watcher failed; relying on periodic rescans until it is re-created');
      w.close();
      if (this.watchers.get(dir) === w) this.watchers.delete(dir);
    });
  }

  /** Watches exactly the directories the scan walked (and the root). */
  private watchDirs(dirs: readonly string[]): void {
    const want = new Set([this.dir, ...dirs]);
    for (const [d, w] of this.watchers) {
      if (want.has(d)) continue;
      w.close();
      this.watchers.delete(d);
    }
    for (const d of want) this.watchDir(d);
  }

  private changed(): void {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.scan(), this.debounceMs);
    this.debounceTimer.unref();
  }

  private async scanOnce(forceNotify: boolean): Promise<boolean> {
    try {
      return await this.scanFiles(forceNotify);
    } catch (err) {
      // never reached by design (each step handles its errors); kept so a bug cannot kill the process
      log.error({ err }, 'config scan failed unexpectedly');
      return false;
    }
  }

  private async scanFiles(forceNotify: boolean): Promise<boolean> {
    let files: string[];
    try {
      const listed = await listYamlFiles(this.dir);
      files = listed.files.sort(cmp);
      if (this.started) this.watchDirs(listed.dirs);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const at = e.path && e.path !== this.dir ? ` at ${e.path}` : '';
      const what = e.code === 'ENOENT' && !at ? 'does not exist' : `cannot be read (${e.code ?? e.message}${at})`;
      const error = new ConfigError('NM_ERR_CONFIG_YAML', { file: this.dir }, `the config directory ${what}; the last good configuration stays in force`);
      const changed = this.dirError?.message !== error.message;
      this.dirError = error;
      if (changed || forceNotify) this.onChange(this.state());
      return changed;
    }
    let changed = this.dirError !== undefined;
    this.dirError = undefined;
    const seen = new Set(files);
    for (const file of [...this.cache.keys()]) {
      if (!seen.has(file)) {
        this.cache.delete(file);
        changed = true;
      }
    }
    for (const file of files) {
      const read = await this.readFile(file);
      if (this.closed) return false;
      if (read === 'gone') {
        // removed between listing and reading: the next scan (the watcher saw it) settles it
        if (this.cache.delete(file)) changed = true;
        continue;
      }
      if (read === 'unchanged') continue;
      changed = true;
      // what was in force from the file stays so until the totals are checked again
      const prev = this.cache.get(file);
      this.cache.set(file, { ...read, ...(prev?.inForce ? { inForce: prev.inForce } : {}) });
    }
    if (this.enforceTotals()) changed = true;
    if (changed || forceNotify) this.onChange(this.state());
    return changed;
  }

  /** One file's new cache entry, 'unchanged' when its bytes are the ones last read, or 'gone'. */
  private async readFile(file: string): Promise<CacheEntry | 'gone' | 'unchanged'> {
    const prev = this.cache.get(file);
    const lastGood = prev?.lastGood ?? [];
    const refused = (text: string, error: ConfigError): CacheEntry | 'unchanged' =>
      prev?.text === text ? 'unchanged' : { text, lastGood, result: { file, documents: lastGood, error, documentErrors: [] } };
    const unreadable = (e: NodeJS.ErrnoException) =>
      refused(`\u0000unreadable:${e.code ?? e.message}`, new ConfigError('NM_ERR_CONFIG_YAML', { file }, `cannot be read (${e.code ?? e.message}); its last good resources stay in force`));
    const tooLarge = (size: number) =>
      refused(
        `\u0000too-large:${size}`,
        new ConfigError(
          'NM_ERR_CONFIG_LIMIT',
          { file },
          `the file is ${formatBytes(size)}, over the limit of ${formatBytes(this.limits.fileBytes)} per file (${LIMIT_FLAGS.fileBytes}); it was not read, ${lastGood.length ? 'its last good resources stay in force' : 'nothing of it is applied'}: split it into several files`,
        ),
      );
    let text: string;
    try {
      // the size first: a file over the limit is never read into memory
      const st = await stat(file);
      if (st.size > this.limits.fileBytes) return tooLarge(st.size);
      text = await readFile(file, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return e.code === 'ENOENT' ? 'gone' : unreadable(e);
    }
    const size = Buffer.byteLength(text); // it may have grown since stat
    if (size > this.limits.fileBytes) return tooLarge(size);
    if (prev?.text === text) return 'unchanged';
    const parsed = await parseYamlFileAsync(file, text, this.limits);
    if ('error' in parsed) return { text, lastGood, result: { file, documents: lastGood, error: parsed.error, documentErrors: [] } };
    return { text, lastGood: parsed.documents, result: { file, ...parsed } };
  }

  /**
   * The resources in force over every file within `resources` and `totalBytes`: a change
   * that would go over them is not applied, and the files that changed keep what they had
   * in force (a new file: nothing). At the first read, or if that is still over (lowered
   * limits), files are taken in path order as long as they fit, each whole or not at all.
   * Returns whether anything in force changed.
   */
  private enforceTotals(): boolean {
    const L = this.limits;
    const entries = [...this.cache.entries()].sort(([a], [b]) => cmp(a, b));
    const want = new Map(entries.map(([f, e]) => [f, e.result.documents]));
    const errors = new Map<string, ConfigError>();
    const sizeOf = (docs: readonly SourceDocument[]) => docs.reduce((n, d) => n + (d.bytes ?? 0), 0);
    const totals = () => {
      let count = 0;
      let bytes = 0;
      for (const docs of want.values()) {
        count += docs.length;
        bytes += sizeOf(docs);
      }
      return { count, bytes };
    };
    const over = (t: { count: number; bytes: number }) => t.count > L.resources || t.bytes > L.totalBytes;
    const describe = (t: { count: number; bytes: number }) =>
      t.count > L.resources
        ? `${t.count} resources, over the limit of ${L.resources} in total (${LIMIT_FLAGS.resources})`
        : `${formatBytes(t.bytes)} of resources, over the limit of ${formatBytes(L.totalBytes)} in total (${LIMIT_FLAGS.totalBytes})`;
    let t = totals();
    // at the first read there is nothing to keep: straight to path order
    const first = entries.every(([, e]) => e.inForce === undefined);
    if (over(t) && !first) {
      const why = describe(t);
      for (const [f, e] of entries) {
        const before = e.inForce ?? [];
        if (want.get(f) === before) continue;
        want.set(f, before);
        errors.set(f, new ConfigError('NM_ERR_CONFIG_LIMIT', { file: f }, `not applied: with this file the configuration would hold ${why}; ${before.length ? 'its last good resources stay in force' : 'nothing of it is applied'}`));
      }
      t = totals();
    }
    if (over(t)) {
      let count = 0;
      let bytes = 0;
      for (const [f] of entries) {
        const docs = want.get(f)!;
        const size = sizeOf(docs);
        if (count + docs.length <= L.resources && bytes + size <= L.totalBytes) {
          count += docs.length;
          bytes += size;
          continue;
        }
        want.set(f, []);
        errors.set(f, new ConfigError('NM_ERR_CONFIG_LIMIT', { file: f }, `not applied: the files before it (in path order) hold ${count} resources (${formatBytes(bytes)}), and its ${docs.length} (${formatBytes(size)}) would go over the limits of ${L.resources} resources and ${formatBytes(L.totalBytes)} in total (${LIMIT_FLAGS.resources}, ${LIMIT_FLAGS.totalBytes})`));
      }
    }
    let changed = false;
    for (const [f, e] of entries) {
      const inForce = want.get(f)!;
      const limitError = errors.get(f);
      if (e.inForce !== inForce || e.limitError?.message !== limitError?.message) changed = true;
      e.inForce = inForce;
      e.limitError = limitError;
    }
    return changed;
  }
}

/** Every *.yaml / *.yml under dir (following symlinks, skipping dot-names), absolute paths, and the directories walked. */
async function listYamlFiles(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const out: string[] = [];
  const dirs: string[] = [];
  const visited = new Set<string>();
  const walk = async (d: string, depth: number, isRoot: boolean): Promise<void> => {
    let real: string;
    try {
      real = await realpath(d);
    } catch (err) {
      if (isRoot) throw err;
      return; // a dangling symlink to a directory
    }
    if (visited.has(real) || depth > MAX_DEPTH) return;
    visited.add(real);
    dirs.push(d);
    const entries = await readdir(d, { withFileTypes: true }); // errors propagate: keep last good
    for (const ent of entries) {
      if (ent.name.startsWith('.')) continue;
      const p = path.join(d, ent.name);
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        const st = await stat(p).catch(() => undefined);
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) await walk(p, depth + 1, false);
      else if (isFile && YAML_FILE.test(ent.name)) out.push(p);
    }
  };
  await walk(dir, 0, true);
  return { files: out, dirs };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
