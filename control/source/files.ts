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
// - Names starting with "." are skipped: a Kubernetes ConfigMap volume holds every file
//   twice (`..2024_01_01_00_00_00.1/x.yaml` and the `x.yaml` symlink to it), which would
//   otherwise make every resource conflict with itself.
//
// Change detection: fs.watch (recursive) triggers a scan after a debounce; a periodic rescan
// is the safety net for what inotify misses (NFS, a directory replaced wholesale, watcher
// errors). A scan re-reads every file and re-parses only those whose bytes changed.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseAllDocuments, isMap, isSeq, type Document } from 'yaml';
import { ConfigError } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import type { FieldPath, SourceDocument } from '../model/source-document.js';

const log = logger('control/source-files');

export interface FileResult {
  file: string;
  /** the Kubernetes objects of the file; the last good ones when `error` is set */
  documents: SourceDocument[];
  /** the whole file failed (NM_ERR_CONFIG_YAML) */
  error?: ConfigError;
  /** documents that are valid YAML but not Kubernetes objects */
  documentErrors: ConfigError[];
}

export interface ParsedFile {
  documents: SourceDocument[];
  documentErrors: ConfigError[];
}

/** Parses one file's text; a YAML error anywhere in the file fails the whole file. */
export function parseYamlFile(file: string, text: string): ParsedFile | { error: ConfigError } {
  const lineCounter = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter, prettyErrors: false }) as Document.Parsed[];
  } catch (err) {
    return { error: new ConfigError('NM_ERR_CONFIG_YAML', { file }, `not valid YAML: ${(err as Error).message}`) };
  }
  if (!Array.isArray(docs)) docs = []; // an empty stream
  for (const doc of docs) {
    const bad = doc.errors[0];
    if (bad) {
      const line = bad.linePos?.[0].line ?? lineCounter.linePos(bad.pos[0]).line;
      const reason = bad.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return {
        error: new ConfigError('NM_ERR_CONFIG_YAML', { file, line }, `not valid YAML: ${reason}; fix the file (its last good resources stay in force meanwhile)`),
      };
    }
  }
  const out: ParsedFile = { documents: [], documentErrors: [] };
  docs.forEach((doc, index) => {
    const contents = doc.contents;
    if (contents === null) return; // comments only, or a bare `---`
    const line = contents.range ? lineCounter.linePos(contents.range[0]).line : 1;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      out.documentErrors.push(new ConfigError('NM_ERR_CONFIG_YAML', { file, line }, `not valid YAML: ${(err as Error).message}`));
      return;
    }
    if (value === null || value === undefined) return; // `~` alone
    const header = objectHeader(file, line, value, doc, lineCounter);
    if (header instanceof ConfigError) out.documentErrors.push(header);
    else out.documents.push({ ...header, index });
  });
  return out;
}

function objectHeader(
  file: string,
  line: number,
  value: unknown,
  doc: Document.Parsed,
  lc: LineCounter,
): Omit<SourceDocument, 'index'> | ConfigError {
  const lineOf = (field: FieldPath): number | undefined => {
    const node = doc.getIn(field as (string | number)[], true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lc.linePos(node.range[0]).line : undefined;
  };
  const expected = 'expected a Kubernetes object: a mapping with apiVersion, kind and metadata.name';
  if (typeof value !== 'object' || Array.isArray(value) || !isMap(doc.contents)) {
    const found = isSeq(doc.contents) ? 'a list' : `a ${typeof value}`;
    return new ConfigError('NM_ERR_CONFIG_FIELD', { file, line }, `${expected}, found ${found}`);
  }
  const object = value as Record<string, unknown>;
  const missing = (field: string, what: string) =>
    new ConfigError('NM_ERR_CONFIG_FIELD', { file, line: lineOf(field.split('.')) ?? line, field }, `${expected}; ${what}`);
  const { apiVersion, kind, metadata } = object;
  if (typeof apiVersion !== 'string' || apiVersion === '')
    return missing('apiVersion', apiVersion === undefined ? 'apiVersion is missing' : 'apiVersion must be a non-empty string such as "v1"');
  if (typeof kind !== 'string' || kind === '')
    return missing('kind', kind === undefined ? 'kind is missing' : 'kind must be a non-empty string such as "Service"');
  const where = (name?: string) => (name ? `${kind} ${name}` : kind);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    return new ConfigError('NM_ERR_CONFIG_FIELD', { file, line, resource: where(), field: 'metadata' }, `${expected}; metadata must be a mapping with a name`);
  const m = metadata as Record<string, unknown>;
  if (typeof m.name !== 'string' || m.name === '')
    return new ConfigError(
      'NM_ERR_CONFIG_FIELD',
      { file, line: lineOf(['metadata', 'name']) ?? line, resource: where(), field: 'metadata.name' },
      m.name === undefined ? 'metadata.name is missing (generateName is not supported)' : 'metadata.name must be a non-empty string',
    );
  if (m.namespace !== undefined && (typeof m.namespace !== 'string' || m.namespace === ''))
    return new ConfigError(
      'NM_ERR_CONFIG_FIELD',
      { file, line: lineOf(['metadata', 'namespace']) ?? line, resource: where(m.name), field: 'metadata.namespace' },
      'metadata.namespace must be a non-empty string (or be left out for "default")',
    );
  return { file, line, apiVersion, kind, name: m.name, namespace: m.namespace as string | undefined, object, lineOf };
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
}

const YAML_FILE = /\.ya?ml$/i;
const MAX_DEPTH = 32;

interface CacheEntry {
  text: string;
  result: FileResult;
  lastGood: SourceDocument[];
}

/** Reads and watches a directory of YAML. */
export class FileSource {
  readonly dir: string;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private readonly onChange: (state: SourceState) => void;
  private cache = new Map<string, CacheEntry>();
  private dirError: ConfigError | undefined;
  private watcher: FSWatcher | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private queued: Promise<boolean> | undefined;
  private closed = false;

  constructor(opts: FileSourceOptions) {
    this.dir = path.resolve(opts.dir);
    this.debounceMs = opts.debounceMs ?? 100;
    this.rescanMs = opts.rescanMs ?? 5000;
    this.onChange = opts.onChange;
  }

  /** First scan (onChange is called even if the directory is empty), then watch. */
  async start(): Promise<void> {
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
    const files = [...this.cache.values()].map((e) => e.result).sort((a, b) => cmp(a.file, b.file));
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
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.debounceTimer);
    clearInterval(this.rescanTimer);
  }

  private ensureWatcher(): void {
    if (this.watcher || this.closed) return;
    try {
      this.watcher = watch(this.dir, { recursive: true, persistent: false }, () => this.changed());
    } catch (err) {
      log.debug({ dir: this.dir, err: (err as Error).message }, 'cannot watch the config directory yet; relying on periodic rescans');
      return;
    }
    this.watcher.on('error', (err) => {
      log.warn({ dir: this.dir, err: err.message }, 'config directory watcher failed; relying on periodic rescans until it is re-created');
      this.watcher?.close();
      this.watcher = undefined;
    });
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
      files = (await listYamlFiles(this.dir)).sort(cmp);
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
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') {
          // removed between listing and reading: the next scan (the watcher saw it) settles it
          if (this.cache.delete(file)) changed = true;
          continue;
        }
        text = `\u0000unreadable:${e.code ?? e.message}`;
        if (this.cache.get(file)?.text === text) continue;
        const prev = this.cache.get(file);
        const error = new ConfigError('NM_ERR_CONFIG_YAML', { file }, `cannot be read (${e.code ?? e.message}); its last good resources stay in force`);
        const lastGood = prev?.lastGood ?? [];
        this.cache.set(file, { text, lastGood, result: { file, documents: lastGood, error, documentErrors: [] } });
        changed = true;
        continue;
      }
      const prev = this.cache.get(file);
      if (prev?.text === text) continue;
      changed = true;
      const parsed = parseYamlFile(file, text);
      if ('error' in parsed) {
        const lastGood = prev?.lastGood ?? [];
        this.cache.set(file, { text, lastGood, result: { file, documents: lastGood, error: parsed.error, documentErrors: [] } });
      } else {
        this.cache.set(file, { text, lastGood: parsed.documents, result: { file, ...parsed } });
      }
    }
    if (changed || forceNotify) this.onChange(this.state());
    return changed;
  }
}

/** Every *.yaml / *.yml under dir (following symlinks, skipping dot-names), absolute paths. */
async function listYamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
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
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
