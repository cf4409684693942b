// `nodemesh version` / `--version`: the package's version and the git revision of the
// checkout it runs from (nodemesh runs from its repository: `npx nodemesh`, the lab, the
// DaemonSet image built from it). The image has no .git: scripts/production-tree.sh writes
// the revision into its REVISION file. A build outside git says "unknown".
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { packagePath, packageRoot } from '../common/paths.js';
import type { OutputFormat } from './command-table.js';
import { printData } from './output.js';

export function versionInfo(): { version: string; revision: string; node: string } {
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    /* no package.json beside the build: unknown */
  }
  let revision = process.env.NODEMESH_GIT_REVISION ?? '';
  if (!revision) {
    try {
      revision = readFileSync(packagePath('REVISION'), 'utf8').trim();
    } catch {
      /* a checkout: ask git */
    }
  }
  if (!revision) {
    try {
      const rev = execFileSync('git', ['-C', packageRoot(), 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', timeout: 2_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      const dirty = execFileSync('git', ['-C', packageRoot(), 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', timeout: 2_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      revision = dirty ? `${rev}-dirty` : rev;
    } catch {
      revision = 'unknown';
    }
  }
  return { version, revision, node: process.version };
}

export async function printVersion(format: OutputFormat, out: NodeJS.WritableStream): Promise<number> {
  const v = versionInfo();
  printData(out, format, v, () => `nodemesh ${v.version} (git ${v.revision}, node ${v.node})\n`);
  return 0;
}
