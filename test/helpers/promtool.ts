// `promtool check metrics` on an exposition, for the lab tests that scrape an agent.
import { runWithInput } from './privileged.js';

/** promtool's complaints about `text`, one per line (a parse error is one too). */
export async function promtoolFindings(text: string): Promise<string[]> {
  const check = await runWithInput('promtool', ['check', 'metrics'], text);
  return (check.stdout + check.stderr).split('\n').filter((l) => l.trim() !== '');
}

/**
 * The findings that are ours to fix. Tolerated: prom-client's own Node.js gauges named
 * *_total (nodejs_active_handles_total…), which are not ours to rename, and Istio's standard
 * istio_request_duration_milliseconds, whose name dashboards depend on (promtool would have
 * it in seconds).
 */
export function ourFindings(findings: readonly string[]): string[] {
  return findings.filter(
    (l) =>
      !/^nodemesh_agent_nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l) &&
      !/^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/.test(l),
  );
}
