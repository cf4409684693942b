// How much configuration the control plane takes in, and the words it refuses more with.
// One 28 MB file of 200,000 documents once took the control plane from 89 MB to 2.4 GB and
// stopped its event loop for half a minute; every bound below is what keeps the memory and
// the time spent reading configuration proportional to a cluster that makes sense.
//
// The defaults follow Kubernetes, whose API server these files stand in for: an object is
// at most ~1.5 MiB in etcd and a ConfigMap at most 1 MiB, so 1 MiB per resource; a file is a
// handful of such objects at most (4 MiB); 20,000 resources in total is a large cluster's
// worth of Pods, Services and policies, and 64 MiB of YAML in force keeps the parsed
// objects (about 3× their text) well under a gigabyte. Each limit is refused with
// NM_ERR_CONFIG_LIMIT naming the file (and the resource), the size found and the limit, and
// the flag that raises it; what was in force before stays in force.

export interface ConfigLimits {
  /** bytes of one file; a larger file is refused without being read (`--max-file-size`) */
  fileBytes: number;
  /** documents in one file; a file with more is refused as a whole (`--max-documents-per-file`) */
  documentsPerFile: number;
  /** bytes of one document's YAML; a larger resource is rejected on its own (`--max-resource-size`) */
  resourceBytes: number;
  /** resources in force over every file (`--max-resources`) */
  resources: number;
  /** bytes of the resources in force over every file (`--max-config-size`) */
  totalBytes: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_CONFIG_LIMITS: Readonly<ConfigLimits> = Object.freeze({
  fileBytes: 4 * MiB,
  documentsPerFile: 5_000,
  resourceBytes: 1 * MiB,
  resources: 20_000,
  totalBytes: 64 * MiB,
});

/** The flag that raises each limit, for the refusal's "what to do". */
export const LIMIT_FLAGS: Readonly<Record<keyof ConfigLimits, string>> = Object.freeze({
  fileBytes: '--max-file-size',
  documentsPerFile: '--max-documents-per-file',
  resourceBytes: '--max-resource-size',
  resources: '--max-resources',
  totalBytes: '--max-config-size',
});

export function configLimits(partial: Partial<ConfigLimits> = {}): ConfigLimits {
  const out = { ...DEFAULT_CONFIG_LIMITS };
  for (const k of Object.keys(out) as (keyof ConfigLimits)[]) {
    const v = partial[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${LIMIT_FLAGS[k]}: expected a positive whole number, got ${v}`);
    out[k] = v;
  }
  return out;
}

/** `28.0 MB`-style sizes for messages: bytes below 1 KiB, else KiB/MiB with one decimal. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / MiB).toFixed(1)} MiB`;
}
