// Where the package's own files are (protos, eBPF objects, the addon, the CLI launcher,
// samples, fixtures), whichever file asks and wherever it was compiled to: every such path
// is resolved from the package root, found once by walking up from this file to the
// directory whose package.json is nodemesh's (the checkout, or the image's production tree,
// which has no sources: scripts/production-tree.sh).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodemeshError } from './errors.js';

let root: string | undefined;

/** The nodemesh package root (the checkout, or the image's /opt/nodemesh). */
export function packageRoot(): string {
  if (root) return root;
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; ) {
    if (isNodemeshPackage(dir)) return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new NodemeshError('NM_ERR_INSTALL', `cannot find the nodemesh package root (a package.json named nodemesh) above ${here}`);
    dir = up;
  }
}

function isNodemeshPackage(dir: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === 'nodemesh';
  } catch {
    return false;
  }
}

/** A path inside the package: `packagePath('control', 'api', 'discovery.proto')`. */
export function packagePath(...segments: string[]): string {
  return path.join(packageRoot(), ...segments);
}
