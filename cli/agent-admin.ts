// How the CLI reads an agent's admin port (15020): only the node itself, a trusted network
// (the lab's host) or a bearer token may (agent/admin/admin-access.ts). `nodemesh status`
// and `nodemesh tap` send the token of `--token-file` (or NODEMESH_ADMIN_TOKEN_FILE) when
// given, and turn a refusal into what to do about it.
import { readFileSync } from 'node:fs';

/** The Authorization header for the admin token in `file` (or $NODEMESH_ADMIN_TOKEN_FILE), if any. */
export function adminHeaders(file = process.env.NODEMESH_ADMIN_TOKEN_FILE): Record<string, string> {
  if (!file) return {};
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`--token-file ${file}: ${(err as Error).message}`);
  }
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** What a 401/403 from an agent's admin port means for the operator; undefined for other statuses. */
export function refusalHint(status: number): string | undefined {
  if (status === 401) return 'the agent refused: its admin port serves the node itself, its trusted networks (--admin-trusted-networks) and holders of its token; run this on the node, or give --token-file with the agent\'s --admin-token-file token';
  if (status === 403) return 'the agent refused: this token may read /metrics and /healthz/ready only (the metrics token); /debug needs the admin token';
  return undefined;
}
