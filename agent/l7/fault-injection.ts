// Fault injection (Istio HTTPFaultInjection, compiled into `Fault`): delay and/or abort a
// percentage of a route's requests. Istio: "If percentage is not specified, no request will
// be affected"… the control plane fills percentage in; 0 affects nothing. "With client-side
// faults, timeouts and retries are not applied" — an aborted request never reaches an
// upstream, and the delay is spent before the request is forwarded.
import type { Fault } from '../../control/api/snapshot-routing.js';

export interface FaultDecision {
  /** ms to wait before forwarding (0 = none) */
  delayMs: number;
  /** HTTP status to answer with instead of forwarding (0 = forward) */
  abortStatus: number;
  /** gRPC status name or number to answer with ("" = none; then abortStatus applies) */
  abortGrpc: string;
}

export const NO_FAULT: FaultDecision = { delayMs: 0, abortStatus: 0, abortGrpc: '' };

function hit(percentage: number, random: () => number): boolean {
  return percentage > 0 && (percentage >= 100 || random() * 100 < percentage);
}

export function decideFault(f: Fault | undefined, random: () => number = Math.random): FaultDecision {
  if (!f) return NO_FAULT;
  const delay = f.delay && hit(f.delay.percentage, random) ? f.delay.fixedDelayMs : 0;
  const abort = f.abort && hit(f.abort.percentage, random) ? f.abort : undefined;
  if (delay === 0 && !abort) return NO_FAULT;
  return { delayMs: delay, abortStatus: abort ? abort.httpStatus || 0 : 0, abortGrpc: abort?.grpcStatus ?? '' };
}

const GRPC_CODES: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** Istio's abort.grpcStatus is a name ("UNAVAILABLE"); a number is accepted too. -1 if unknown. */
export function grpcCode(s: string): number {
  if (/^\d+$/.test(s)) return Number(s);
  return GRPC_CODES[s.toUpperCase()] ?? -1;
}

/**
 * gRPC's mapping of HTTP statuses a proxy generates to gRPC codes
 * (grpc/doc/http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403
 * PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function httpToGrpc(status: number): number {
  switch (status) {
    case 200:
      return 0;
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** The HTTP status Envoy's outlier detector counts for a gRPC status (its inverse mapping). */
export function grpcToHttp(code: number): number {
  switch (code) {
    case 0:
      return 200;
    case 1:
      return 499;
    case 3:
    case 9:
    case 11:
      return 400;
    case 4:
      return 504;
    case 5:
      return 404;
    case 6:
    case 10:
      return 409;
    case 7:
      return 403;
    case 8:
      return 429;
    case 12:
      return 501;
    case 14:
      return 503;
    case 16:
      return 401;
    default:
      return 500;
  }
}
