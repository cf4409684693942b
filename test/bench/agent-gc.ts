// Full garbage collections in a lab's agents on request, for the suite's memory readings and
// its quiet points: an agent started with agentGcEnv() loads pods/collect-garbage.ts, which
// runs one on SIGWINCH and writes the agent's memory after it into the directory named.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { podProgram } from './lab-exec.js';

/** The environment a lab's agents need for collectGarbage (their NODE_OPTIONS keep what the suite's had). */
export function agentGcEnv(gcDir: string): Record<string, string> {
  return {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${podProgram('collect-garbage.js')}`.trim(),
    NODEMESH_BENCH_GC_DIR: gcDir,
  };
}

/** Asks an agent for a full garbage collection (SIGWINCH, pods/collect-garbage.ts); its memory after it. */
export async function collectGarbage(pid: number, gcDir: string): Promise<{ heapUsed: number; rss: number }> {
  const file = path.join(gcDir, `${pid}.json`);
  await rm(file, { force: true });
  process.kill(pid, 'SIGWINCH');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text) return JSON.parse(text) as { heapUsed: number; rss: number };
    if (Date.now() > deadline)
      throw new Error(`agent ${pid} did not report a garbage collection within 30 s (pods/collect-garbage.ts not loaded?)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
