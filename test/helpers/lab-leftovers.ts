// What of a lab's network is still there after `lab down`, for the leak checks of the lab tests.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LABS_DIR } from '../../deploy/lab/lab-state.js';
import { run } from './privileged.js';

/**
 * The links of `slot` (named nm<slot><letter>…) still there, unless another lab holds the slot
 * now. Links are named by slot and ava runs lab files in parallel: once a lab released its
 * slot another may claim it and make links of the same names (claim first, then links), which
 * are that lab's. The owner is read after the links, so a foreign link in the listing was made
 * after a claim that the read then sees.
 */
export async function slotLinksLeft(labName: string, slot: number): Promise<string[]> {
  const names = (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '');
  const links = names.filter((l) => new RegExp(`^nm${slot}[a-z]\\d*$`).test(l));
  const owner = await readFile(path.join(LABS_DIR, '.slots', String(slot)), 'utf8').catch(() => '');
  return owner === '' || owner === labName ? links : [];
}
