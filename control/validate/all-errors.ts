// Every error of a resource in one run, not the first only: the kind validators stop at the
// first problem (each reader throws a FieldProblem), so the document is validated again with
// the faulty part taken out, until it passes or the bound is reached — error recovery by
// deletion, as a compiler recovers after a syntax error to report the next one.
//
// - The faulty value is removed from a private copy (a list item is spliced out, a key
//   deleted). When the same field fails again (a required field, now missing), its parent
//   goes instead, up to the whole document, which ends the search.
// - A problem at a field that is, or contains, something already removed is a consequence of
//   the removal ("is required", "expected at least one port"), not a mistake of the author,
//   and is not reported.
// - Paths are reported in the author's coordinates: list items spliced out of the copy are
//   remembered, so `spec.http[2]` stays `spec.http[2]` after `spec.http[0]` was removed, and
//   the line is found in the original document.
import { FieldProblem, isObj, type Obj } from './fields.js';
import type { FieldPath } from '../model/source-document.js';

/** At most this many validation rounds per document: the errors shown, and the count of the rest. */
export const MAX_ROUNDS = 50;

export interface Problems {
  /** in the order found, with paths into the original document */
  problems: FieldProblem[];
  /** more problems may exist: the bound on rounds was reached */
  truncated: boolean;
}

/**
 * Runs `validate` on a copy of `doc` until it passes, each time removing what failed.
 * `validate` throws a FieldProblem (anything else is rethrown); `rounds` bounds the work.
 */
export function collectProblems(doc: Obj, validate: (copy: Obj) => void, rounds = MAX_ROUNDS): Problems {
  const copy = structuredClone(doc);
  const origin = new WeakMap<unknown[], number[]>();
  const removed: FieldPath[] = [];
  const problems: FieldProblem[] = [];
  let previous: string | undefined;
  let escalate = 0;
  for (let round = 0; round < rounds; round++) {
    try {
      validate(copy);
      return { problems, truncated: false };
    } catch (err) {
      if (!(err instanceof FieldProblem)) throw err;
      const original = toOriginal(copy, err.path, origin);
      const key = JSON.stringify(original);
      const consequence = removed.some((r) => isPrefix(original, r));
      if (!consequence && !problems.some((p) => JSON.stringify(p.path) === key && p.message === err.message)) problems.push(new FieldProblem(original, err.message));
      // the same field fails again: what was removed was not enough, take its parent
      escalate = key === previous ? escalate + 1 : 0;
      previous = key;
      const target = err.path.slice(0, Math.max(0, err.path.length - escalate));
      const at = removeNearest(copy, target, origin);
      if (at === undefined) return { problems, truncated: false };
      removed.push(at.originalPath);
    }
  }
  return { problems, truncated: true };
}

function isPrefix(prefix: FieldPath, path: FieldPath): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}

/** A path into the copy → the same place in the original document. */
function toOriginal(copy: Obj, path: FieldPath, origin: WeakMap<unknown[], number[]>): FieldPath {
  const out: (string | number)[] = [];
  let node: unknown = copy;
  for (const seg of path) {
    if (Array.isArray(node) && typeof seg === 'number') {
      out.push(origin.get(node)?.[seg] ?? seg);
      node = node[seg];
    } else {
      out.push(seg);
      node = isObj(node) ? node[String(seg)] : undefined;
    }
  }
  return out;
}

/**
 * Removes the value at `path` from the copy, or, where there is none, the nearest existing
 * ancestor (never the document itself); returns where it was, in original coordinates.
 */
function removeNearest(copy: Obj, path: FieldPath, origin: WeakMap<unknown[], number[]>): { originalPath: FieldPath } | undefined {
  for (let len = path.length; len > 0; len--) {
    const p = path.slice(0, len);
    const parent = walk(copy, p.slice(0, -1));
    const last = p[len - 1]!;
    if (Array.isArray(parent) && typeof last === 'number' && last < parent.length) {
      const originalPath = toOriginal(copy, p, origin);
      const map = origin.get(parent) ?? parent.map((_, i) => i);
      map.splice(last, 1);
      parent.splice(last, 1);
      origin.set(parent, map);
      return { originalPath };
    }
    if (isObj(parent) && typeof last === 'string' && Object.prototype.hasOwnProperty.call(parent, last)) {
      const originalPath = toOriginal(copy, p, origin);
      delete parent[last];
      return { originalPath };
    }
  }
  return undefined;
}

function walk(node: unknown, path: FieldPath): unknown {
  for (const seg of path) {
    if (Array.isArray(node) && typeof seg === 'number') node = node[seg];
    else if (isObj(node)) node = node[String(seg)];
    else return undefined;
  }
  return node;
}
