// The YAML directory source: multi-document files as upstream projects write them, per-file
// last good on YAML errors, recursion, and the ConfigMap-volume layout.
import test from 'ava';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileSource, parseYamlFile, type SourceState } from '../../control/source/files.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemesh-source-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function names(state: SourceState): string[] {
  return state.files.flatMap((f) => f.documents.map((d) => `${path.basename(f.file)}:${d.kind}/${d.name}`));
}

test('a multi-document file with comments, empty documents, a bare trailing --- and no final newline yields each object once', (t) => {
  const text = [
    '# leading comment',
    '---',
    'apiVersion: v1',
    'kind: Namespace',
    'metadata: {name: a}',
    '---',
    '# a document with only a comment',
    '---',
    'apiVersion: v1',
    'kind: ServiceAccount',
    'metadata:',
    '  name: b',
    '---',
  ].join('\n');
  const parsed = parseYamlFile('/x/a.yaml', text);
  if ('error' in parsed) return t.fail(parsed.error.message);
  t.deepEqual(
    parsed.documents.map((d) => [d.kind, d.name, d.line]),
    [
      ['Namespace', 'a', 3],
      ['ServiceAccount', 'b', 9],
    ],
  );
  t.deepEqual(parsed.documentErrors, []);
});

test('invalid YAML fails the whole file with NM_ERR_CONFIG_YAML naming the file and the line', (t) => {
  const parsed = parseYamlFile('/x/bad.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [unclosed\n');
  if (!('error' in parsed)) return t.fail('expected a YAML error');
  t.is(parsed.error.code, 'NM_ERR_CONFIG_YAML');
  t.is(parsed.error.location.file, '/x/bad.yaml');
  t.true(typeof parsed.error.location.line === 'number' && parsed.error.location.line >= 4, `line ${parsed.error.location.line}`);
  t.regex(parsed.error.message, /^\/x\/bad\.yaml:\d+: not valid YAML/);
});

test('a document that is not a Kubernetes object is reported alone; the other documents of the file still count', (t) => {
  const parsed = parseYamlFile('/x/mixed.yaml', '- just\n- a list\n---\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n');
  if ('error' in parsed) return t.fail(parsed.error.message);
  t.deepEqual(parsed.documents.map((d) => d.name), ['ok']);
  t.is(parsed.documentErrors.length, 2);
  t.regex(parsed.documentErrors[0]!.message, /\/x\/mixed\.yaml:1: expected a Kubernetes object.*found a list/);
  t.regex(parsed.documentErrors[1]!.message, /\/x\/mixed\.yaml:4: field apiVersion: .*apiVersion is missing/);
});

test('the source reads *.yaml and *.yml recursively, follows symlinks, and skips dot-names like a ConfigMap volume\'s ..data', async (t) => {
  const dir = await tempDir(t);
  const ns = (n: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${n}\n`;
  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await mkdir(path.join(dir, '..2024_01_01'), { recursive: true });
  await writeFile(path.join(dir, 'top.yaml'), ns('top'));
  await writeFile(path.join(dir, 'sub', 'deeper', 'nested.yml'), ns('nested'));
  await writeFile(path.join(dir, 'sub', 'notes.txt'), ns('ignored'));
  await writeFile(path.join(dir, '..2024_01_01', 'cm.yaml'), ns('cm'));
  await symlink(path.join(dir, '..2024_01_01', 'cm.yaml'), path.join(dir, 'cm.yaml'));
  const seen: SourceState[] = [];
  const source = new FileSource({ dir, rescanMs: 0, onChange: (s) => seen.push(s) });
  t.teardown(() => source.close());
  await source.start();
  t.deepEqual(names(seen.at(-1)!), ['cm.yaml:Namespace/cm', 'nested.yml:Namespace/nested', 'top.yaml:Namespace/top']);
});

test('a file that becomes invalid YAML keeps its last good documents until it is fixed, and removing it removes them', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'a.yaml');
  await writeFile(file, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: good\n');
  let state: SourceState | undefined;
  const source = new FileSource({ dir, rescanMs: 0, onChange: (s) => (state = s) });
  t.teardown(() => source.close());
  await source.start();
  await writeFile(file, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: good\n   bad-indent: x\n');
  await source.scan();
  t.is(state!.files[0]!.error?.code, 'NM_ERR_CONFIG_YAML');
  t.deepEqual(names(state!), ['a.yaml:Namespace/good']);
  await writeFile(file, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fixed\n');
  await source.scan();
  t.is(state!.files[0]!.error, undefined);
  t.deepEqual(names(state!), ['a.yaml:Namespace/fixed']);
  await rm(file);
  await source.scan();
  t.deepEqual(names(state!), []);
});

test('a config directory that disappears keeps the last listing in force and reports it', async (t) => {
  const dir = await tempDir(t);
  const conf = path.join(dir, 'conf');
  await mkdir(conf);
  await writeFile(path.join(conf, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kept\n');
  let state: SourceState | undefined;
  const source = new FileSource({ dir: conf, rescanMs: 0, onChange: (s) => (state = s) });
  t.teardown(() => source.close());
  await source.start();
  await rm(conf, { recursive: true });
  await source.scan();
  t.is(state!.error?.code, 'NM_ERR_CONFIG_YAML');
  t.regex(state!.error!.message, /config directory does not exist/);
  t.deepEqual(names(state!), ['a.yaml:Namespace/kept']);
});

test('a change in the watched directory is picked up without a periodic rescan', async (t) => {
  const dir = await tempDir(t);
  const states: SourceState[] = [];
  let notify: () => void = () => {};
  const source = new FileSource({
    dir,
    debounceMs: 20,
    rescanMs: 0,
    onChange: (s) => {
      states.push(s);
      notify();
    },
  });
  t.teardown(() => source.close());
  await source.start();
  // the watcher and its timers never keep a process alive; this deadline does, for the test
  let deadline: NodeJS.Timeout | undefined;
  const changed = new Promise<void>((resolve, reject) => {
    notify = resolve;
    deadline = setTimeout(() => reject(new Error('no change seen within 5 s')), 5000);
  });
  t.teardown(() => clearTimeout(deadline));
  await writeFile(path.join(dir, 'new.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: late\n');
  await changed;
  t.deepEqual(names(states.at(-1)!), ['new.yaml:Namespace/late']);
});

test('a file saved again and again by a rename over it (an atomic write), in the root or a subdirectory, is picked up each time without a periodic rescan', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'sub'));
  const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`;
  await writeFile(path.join(dir, 'probe.yaml'), ns('v0'));
  await writeFile(path.join(dir, 'sub', 'deep.yaml'), ns('d0'));
  let latest: SourceState | undefined;
  let wake: () => void = () => {};
  const source = new FileSource({
    dir,
    debounceMs: 20,
    rescanMs: 0,
    onChange: (s) => {
      latest = s;
      wake();
    },
  });
  t.teardown(() => source.close());
  await source.start();
  const seen = async (want: string[]) => {
    const until = Date.now() + 5000;
    while (JSON.stringify(latest && names(latest)) !== JSON.stringify(want)) {
      if (Date.now() > until) throw new Error(`still ${JSON.stringify(latest && names(latest))} 5 s after the save, wanted ${JSON.stringify(want)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  for (let k = 1; k <= 4; k++) {
    // the temporary file is written and renamed in one go: no event of the watcher comes between
    for (const [file, name] of [
      [path.join(dir, 'probe.yaml'), `v${k}`],
      [path.join(dir, 'sub', 'deep.yaml'), `d${k}`],
    ] as const) {
      writeFileSync(`${path.dirname(file)}/.save.tmp`, ns(name));
      renameSync(`${path.dirname(file)}/.save.tmp`, file);
    }
    await t.notThrowsAsync(seen([`probe.yaml:Namespace/v${k}`, `deep.yaml:Namespace/d${k}`]), `save ${k}`);
  }
});
