// Where the package's own files are (protos, eBPF objects, the addon, the CLI launcher,
// samples, fixtures), whichever file asks and wherever it was compiled to: every such path
// is resolved from the package root, found once by walking up from this file to the
// directory that holds package.json and bpf/.
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
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bpf'))) return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new NodemeshError('NM_ERR_INSTALL', `cannot find the nodemesh package root (package.json beside bpf/) above ${here}`);
    dir = up;
  }
}

/** A path inside the package: `packagePath('control', 'api', 'discovery.proto')`. */
export function packagePath(...segments: string[]): string {
  return path.join(packageRoot(), ...segments);
}
