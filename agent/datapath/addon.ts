// The native addon (native/, a thin layer over libbpf and the tc netlink calls), loaded and
// typed once: the only file that loads it. All policy stays in TypeScript; the addon's
// calls throw with an errno, which nat() turns into a DatapathError with context.
import { createRequire } from 'node:module';
import { NodemeshError, type ErrorCode } from '../../common/errors.js';
import { logger } from '../../common/log.js';
import { packagePath } from '../../common/paths.js';
import { checkLayout, type NativeLayout } from './codecs.js';

const log = logger('agent/datapath');

export interface NativeLinkInfo {
  id: number;
  progId: number;
  type: number;
  attachType: number;
  cgroupId: bigint;
}

export interface NativeMapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export type TcDirection = 'ingress' | 'egress';

export interface Native {
  // objects and programs
  openObject(path: string): number;
  setMapPinPath(obj: number, mapName: string, path: string): void;
  load(obj: number): void;
  closeObject(obj: number): void;
  mapFd(obj: number, mapName: string): number;
  programNames(obj: number): string[];
  // cgroup links
  attachCgroup(obj: number, progName: string, cgroupDir: string): number;
  linkPin(link: number, path: string): void;
  linkUnpin(link: number): void;
  linkDetach(link: number): void;
  linkDestroy(link: number): void;
  linkOpen(pinPath: string): number;
  linkUpdateProgram(link: number, obj: number, progName: string): void;
  linkInfo(link: number): NativeLinkInfo;
  // tc filters
  tcAttach(obj: number, progName: string, ifindex: number, direction: TcDirection, handle: number, priority: number): number;
  tcQuery(ifindex: number, direction: TcDirection, handle: number, priority: number): { progId: number; progName: string } | null;
  tcDetach(ifindex: number, direction: TcDirection, handle: number, priority: number): boolean;
  tcHookDestroy(ifindex: number): boolean;
  // maps
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapDelete(fd: number, key: Buffer): boolean;
  mapKeys(fd: number, keySize: number): Buffer[];
  mapOpenPinned(path: string): number;
  mapInfo(fd: number): NativeMapInfo;
  closeFd(fd: number): void;
  netnsCookie(netnsPath: string): bigint;
  // descriptors over a Unix socket (SCM_RIGHTS)
  unixConnect(path: string): number;
  sendFds(sock: number, data: Buffer, fds: number[]): void;
  recvFds(sock: number, maxBytes: number, timeoutMs: number): { data: Buffer; fds: number[] } | null;
  layout: NativeLayout;
}

/** A NodemeshError from a failed libbpf/bpf()/syscall, carrying the errno. */
export class DatapathError extends NodemeshError {
  readonly errno: number | undefined;
  readonly errnoCode: string | undefined;
  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'DatapathError';
    const c = cause as { errno?: unknown; code?: unknown } | undefined;
    this.errno = typeof c?.errno === 'number' ? c.errno : undefined;
    this.errnoCode = typeof c?.code === 'string' ? c.code : undefined;
  }
}

let addon: Native | undefined;

/** The addon, loaded on first use; its layout is checked against the codecs then. */
export function native(): Native {
  if (addon) return addon;
  const file = packagePath('build', 'Release', 'nodemesh_native.node');
  try {
    addon = createRequire(import.meta.url)(file) as Native;
  } catch (err) {
    throw new DatapathError(
      'NM_ERR_BPF',
      `cannot load the native addon ${file}: ${(err as Error).message}; build it: bash scripts/build.sh`,
      err,
    );
  }
  checkLayout(addon.layout);
  return addon;
}

/** Runs an addon call; its exception becomes a DatapathError with `code` and context. */
export function nat<T>(code: ErrorCode, context: string, fn: (n: Native) => T): T {
  const n = native();
  try {
    return fn(n);
  } catch (err) {
    throw new DatapathError(code, `${context}: ${(err as Error).message}`, err);
  }
}

/** Runs every cleanup step, whatever the others do (a failure is logged at debug). */
export function tryAll(...fns: Array<() => void>): void {
  for (const f of fns) {
    try {
      f();
    } catch (err) {
      log.debug({ err }, 'ignored during cleanup');
    }
  }
}
