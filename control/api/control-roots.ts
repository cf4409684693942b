// The --root-cert file: the mesh root(s) an agent verifies the control plane with, and the
// trust bundle it checks certificates against until a snapshot brings one. Its own module,
// without gRPC, so that a restarted agent checks the certificates it restores (and serves
// with them) before it loads the control-plane client (control-credentials.ts).
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { NodemeshError } from '../../common/errors.js';
import { splitPemCertificates } from './x509-svid.js';

export function controlError(message: string, cause?: unknown): NodemeshError {
  return new NodemeshError('NM_ERR_CONTROL', message, cause === undefined ? undefined : { cause });
}

/** The certificates of a root file's text; none, or one that does not parse, is an error naming the file. */
export function parseRootCerts(file: string, text: string): string[] {
  const roots = splitPemCertificates(text);
  if (roots.length === 0) throw controlError(`--root-cert ${file} holds no PEM certificate: give the file of the mesh's root certificate(s)`);
  for (const r of roots) {
    try {
      new X509Certificate(r);
    } catch (err) {
      throw controlError(`--root-cert ${file}: a certificate cannot be parsed: ${(err as Error).message}`, err);
    }
  }
  return roots;
}

/** The root file read now: missing or unreadable is an NM_ERR_CONTROL naming it. */
export function readRootCertFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw controlError(`--root-cert ${file}: ${(err as Error).message}`, err);
  }
  return parseRootCerts(file, text);
}
