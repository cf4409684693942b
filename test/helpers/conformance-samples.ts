// The upstream YAML in ../shared/conformance/, beside the repository: Istio, Gateway API and
// Kubernetes samples as their projects publish them (NODEMESH_CONFORMANCE_DIR points
// elsewhere: a worktree, the mutation sandbox). Some machines do not have it: the tests that
// read it are skipped there, and fail in CI (CI=true), where the folder must be present.
import test, { type ImplementationFn } from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../common/paths.js';

export const CONFORMANCE_DIR = process.env.NODEMESH_CONFORMANCE_DIR ?? path.resolve(packageRoot(), '..', 'shared', 'conformance');
const SECURITY_DIR = path.join(CONFORMANCE_DIR, 'security');

/** A sample of security/ (AuthorizationPolicy, PeerAuthentication), as text. */
export function securitySample(file: string): string {
  return readFileSync(path.join(SECURITY_DIR, file), 'utf8');
}

/**
 * `test` where the security samples are present; elsewhere a test that fails in CI and is
 * skipped outside it.
 */
export function securitySampleTest(title: string, fn: ImplementationFn<[]>): void {
  if (existsSync(SECURITY_DIR)) test(title, fn);
  else if (process.env.CI === 'true') test(title, (t) => t.fail(`${SECURITY_DIR} is missing: CI must run with shared/ next to the repository`));
  else test.skip(`${title} (${SECURITY_DIR} is absent on this machine)`, fn);
}
