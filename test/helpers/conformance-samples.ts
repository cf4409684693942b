// The upstream YAML in ../shared/conformance/, beside the repository: Istio, Gateway API and
// Kubernetes samples as their projects publish them. Some machines do not have it; the tests
// that read it are skipped there (conformance.test.ts fails instead in CI).
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../common/paths.js';

export const CONFORMANCE_DIR = path.resolve(packageRoot(), '..', 'shared', 'conformance');
const SECURITY_DIR = path.join(CONFORMANCE_DIR, 'security');

/** A sample of security/ (AuthorizationPolicy, PeerAuthentication), as text. */
export function securitySample(file: string): string {
  return readFileSync(path.join(SECURITY_DIR, file), 'utf8');
}

/** `test` where the security samples are present, `test.skip` elsewhere. */
export const securitySampleTest = existsSync(SECURITY_DIR) ? test : test.skip;
