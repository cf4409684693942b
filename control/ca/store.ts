// The CA's state directory (`--ca-dir`), the only place its secrets live:
//   root-cert.pem, root-key.pem   the generated root the CA signs with (0600)
//   rotation.json                 during a root rotation: the previous root (still trusted
//                                 until retireAt) and the new one (0600)
//   trust-bundle.pem              the roots the mesh trusts now, public (0644): what an
//                                 agent is given as --root-cert (a ConfigMap on Kubernetes)
//   rotate-request.json           dropped by `nodemesh ca rotate`, consumed by the CA
//   rotate-result.json            the CA's answer to the last request (what the CLI prints)
// The directory is 0700: who may write a rotation request is who may read the keys.
// Every write goes to a temporary file in the same directory, then rename(): a crash never
// leaves half a key.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NodemeshError } from '../../common/errors.js';
import { logger } from '../../common/log.js';

const log = logger('control/ca-store');

export const CA_FILES = {
  rootCert: 'root-cert.pem',
  rootKey: 'root-key.pem',
  rotation: 'rotation.json',
  trustBundle: 'trust-bundle.pem',
  rotateRequest: 'rotate-request.json',
  rotateResult: 'rotate-result.json',
} as const;

export interface RotationState {
  /** request id (from `nodemesh ca rotate`) or a generated one */
  id: string;
  rotatedAt: string;
  /** the root signed with before the rotation: trusted until retireAt */
  previousRootPem: string;
  /** the root signed with since (lets a crash between the two renames be repaired) */
  newRootPem: string;
  retireAt: string;
}

export interface RotateResult {
  id: string;
  ok: boolean;
  error?: string;
  rotation?: RotationState;
}

export interface RotateRequest {
  id: string;
  /** how long the previous root stays trusted (default: the CA's configured overlap) */
  overlapSeconds?: number;
  requestedAt?: string;
}

/** Writes `data` to `file` with `mode` atomically (temporary file + rename). */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode); // the umask may have narrowed or the file pre-existed
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NodemeshError('NM_ERR_CA', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export class CaStore {
  constructor(readonly dir: string) {}

  file(name: keyof typeof CA_FILES): string {
    return path.join(this.dir, CA_FILES[name]);
  }

  /** Creates the directory (0700) or tightens it. */
  async ensure(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const st = await stat(this.dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      if ((st.mode & 0o077) !== 0) {
        log.warn({ dir: this.dir, mode: (st.mode & 0o777).toString(8) }, 'CA dir was readable by others; set to 0700');
        await chmod(this.dir, 0o700);
      }
    } catch (err) {
      throw new NodemeshError('NM_ERR_CA', `CA dir ${this.dir} cannot be used: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The generated root, or undefined on first start. A key without its certificate (or the reverse) is an error. */
  async loadRoot(): Promise<{ certPem: string; keyPem: string } | undefined> {
    const [certPem, keyPem] = await Promise.all([readIfExists(this.file('rootCert')), readIfExists(this.file('rootKey'))]);
    if (certPem === undefined && keyPem === undefined) return undefined;
    if (certPem === undefined || keyPem === undefined) {
      const missing = certPem === undefined ? CA_FILES.rootCert : CA_FILES.rootKey;
      throw new NodemeshError('NM_ERR_CA', `CA dir ${this.dir} has one of ${CA_FILES.rootCert}/${CA_FILES.rootKey} but not ${missing}: restore it, or remove both to generate a new root (every agent then needs the new trust bundle)`);
    }
    const st = await stat(this.file('rootKey'));
    if ((st.mode & 0o077) !== 0) {
      log.warn({ file: this.file('rootKey'), mode: (st.mode & 0o777).toString(8) }, 'root key was readable by others; set to 0600');
      await chmod(this.file('rootKey'), 0o600);
    }
    return { certPem, keyPem };
  }

  /** Key first, then certificate: a crash in between is repaired from rotation.json (newRootPem). */
  async saveRoot(certPem: string, keyPem: string): Promise<void> {
    await writeFileAtomic(this.file('rootKey'), keyPem, 0o600);
    await writeFileAtomic(this.file('rootCert'), certPem, 0o600);
  }

  async saveRootCert(certPem: string): Promise<void> {
    await writeFileAtomic(this.file('rootCert'), certPem, 0o600);
  }

  async loadRotation(): Promise<RotationState | undefined> {
    const text = await readIfExists(this.file('rotation'));
    if (text === undefined) return undefined;
    try {
      const r = JSON.parse(text) as RotationState;
      if (typeof r.previousRootPem !== 'string' || typeof r.newRootPem !== 'string' || Number.isNaN(Date.parse(r.retireAt))) throw new Error('fields missing');
      return r;
    } catch (err) {
      throw new NodemeshError('NM_ERR_CA', `${this.file('rotation')} is not a valid rotation record (${(err as Error).message}): restore it, or remove it to stop trusting the previous root now`, { cause: err });
    }
  }

  async saveRotation(r: RotationState): Promise<void> {
    await writeFileAtomic(this.file('rotation'), `${JSON.stringify(r, null, 2)}\n`, 0o600);
  }

  async clearRotation(): Promise<void> {
    await rm(this.file('rotation'), { force: true });
  }

  async writeTrustBundle(roots: readonly string[]): Promise<void> {
    await writeFileAtomic(this.file('trustBundle'), roots.map((r) => r.trimEnd() + '\n').join(''), 0o644);
  }

  /**
   * Takes (reads and removes) a pending rotation request. A request that is not valid JSON
   * is removed too and reported, so it cannot block the next one.
   */
  async takeRotateRequest(): Promise<RotateRequest | undefined> {
    const file = this.file('rotateRequest');
    const text = await readIfExists(file);
    if (text === undefined) return undefined;
    await rm(file, { force: true });
    let r: RotateRequest;
    try {
      r = JSON.parse(text) as RotateRequest;
    } catch (err) {
      throw new NodemeshError('NM_ERR_CA', `${file} is not valid JSON; request ignored: ${(err as Error).message}`, { cause: err });
    }
    if (typeof r.id !== 'string' || (r.overlapSeconds !== undefined && !(Number.isFinite(r.overlapSeconds) && r.overlapSeconds >= 0))) {
      throw new NodemeshError('NM_ERR_CA', `${file}: expected {"id": string, "overlapSeconds"?: number >= 0}; request ignored`);
    }
    return r;
  }

  async writeRotateResult(r: RotateResult): Promise<void> {
    await writeFileAtomic(this.file('rotateResult'), `${JSON.stringify(r, null, 2)}\n`, 0o600);
  }

  async readRotateResult(): Promise<RotateResult | undefined> {
    const text = await readIfExists(this.file('rotateResult'));
    return text === undefined ? undefined : (JSON.parse(text) as RotateResult);
  }

  /** What `nodemesh ca rotate` writes. */
  async writeRotateRequest(r: RotateRequest): Promise<void> {
    await writeFileAtomic(this.file('rotateRequest'), `${JSON.stringify(r)}\n`, 0o600);
  }
}
