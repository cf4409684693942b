// Retry policy: which outcomes of a try are retried, and how long to wait before the next
// one. Compiled once per route per snapshot into bit masks, so the per-try decision is a few
// integer tests.
//
// Envoy's retry_on semantics (what Istio's retryOn is passed to):
//   5xx             "any 5xx response code, or if the upstream server does not respond at all
//                   (disconnect/reset/read timeout). (Includes connect-failure and refused-stream)"
//   gateway-error   502, 503 or 504, and the same resets and connect failures
//   reset           "the upstream server does not respond at all (disconnect/reset/read timeout.)"
//   reset-before-request  a reset before any request bytes went upstream
//   connect-failure "a connection failure to the upstream server (connect timeout, etc.)"
//   retriable-4xx   409
//   refused-stream  the upstream reset the stream with REFUSED_STREAM
//   retriable-status-codes  the status is one of the listed codes
//   gRPC: cancelled, deadline-exceeded, internal, resource-exhausted, unavailable — the
//         grpc-status of the response (trailers-only, or trailers before any message)
// A per-try timeout "is treated as a local reset, so it retries only under 5xx,
// gateway-error or reset".
//
// Back-off: "fully jittered exponential back-off algorithm ... base interval 25ms"; retry N
// waits a uniform random time in [0, min(base × 2^(N-1), max)), max = 10 × base by default.
import type { RetryPolicy } from '../../control/api/snapshot-routing.js';
import { fullJitterBackoff } from '../../common/backoff.js';

const ON_5XX = 1 << 0;
const ON_GATEWAY = 1 << 1;
const ON_RESET = 1 << 2;
const ON_RESET_BEFORE_REQUEST = 1 << 3;
const ON_CONNECT_FAILURE = 1 << 4;
const ON_RETRIABLE_4XX = 1 << 5;
const ON_REFUSED_STREAM = 1 << 6;
const ON_STATUS_CODES = 1 << 7;

const TOKENS: Record<string, number> = {
  '5xx': ON_5XX,
  'gateway-error': ON_GATEWAY,
  reset: ON_RESET,
  'reset-before-request': ON_RESET_BEFORE_REQUEST,
  'connect-failure': ON_CONNECT_FAILURE,
  'retriable-4xx': ON_RETRIABLE_4XX,
  'refused-stream': ON_REFUSED_STREAM,
  'retriable-status-codes': ON_STATUS_CODES,
};

/** gRPC status codes retryable by name (Envoy's x-envoy-retry-grpc-on). */
export const GRPC_RETRY_TOKENS: Record<string, number> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

/** Why a try failed without (usable) response headers. */
export type TryFailure = 'connect-failure' | 'reset-before-request' | 'reset' | 'refused-stream' | 'per-try-timeout';

export interface CompiledRetry {
  /** retries after the first try */
  readonly attempts: number;
  readonly perTryTimeoutMs: number;
  readonly on: number;
  readonly codes: ReadonlySet<number>;
  /** bit i set = retry on grpc-status i */
  readonly grpc: number;
  readonly baseMs: number;
  readonly maxMs: number;
}

export const NO_RETRY: CompiledRetry = { attempts: 0, perTryTimeoutMs: 0, on: 0, codes: new Set(), grpc: 0, baseMs: 25, maxMs: 250 };

export function compileRetry(p: RetryPolicy | undefined): CompiledRetry {
  if (!p || !(p.attempts > 0)) return NO_RETRY;
  let on = 0;
  let grpc = 0;
  const codes = new Set<number>(p.retriableStatusCodes ?? []);
  for (const raw of p.retryOn ?? []) {
    const t = raw.trim();
    if (t in TOKENS) on |= TOKENS[t]!;
    else if (t in GRPC_RETRY_TOKENS) grpc |= 1 << GRPC_RETRY_TOKENS[t]!;
    else if (/^\d{3}$/.test(t)) codes.add(Number(t)); // Istio: bare integers are retriable status codes
  }
  if (codes.size > 0) on |= ON_STATUS_CODES;
  const baseMs = p.backoffBaseMs > 0 ? p.backoffBaseMs : 25;
  const maxMs = p.backoffMaxMs > 0 ? p.backoffMaxMs : 10 * baseMs;
  return { attempts: p.attempts, perTryTimeoutMs: p.perTryTimeoutMs ?? 0, on, codes, grpc, baseMs, maxMs };
}

/** Is a response with this status (and grpc-status, -1 when none) worth another try? */
export function retriableResponse(r: CompiledRetry, status: number, grpcStatus: number): boolean {
  if (grpcStatus >= 0 && grpcStatus < 31 && (r.grpc & (1 << grpcStatus)) !== 0) return true;
  if (status >= 500 && status <= 599 && (r.on & ON_5XX) !== 0) return true;
  if ((status === 502 || status === 503 || status === 504) && (r.on & ON_GATEWAY) !== 0) return true;
  if (status === 409 && (r.on & ON_RETRIABLE_4XX) !== 0) return true;
  if ((r.on & ON_STATUS_CODES) !== 0 && r.codes.has(status)) return true;
  return false;
}

/** Is a try that failed this way worth another? */
export function retriableFailure(r: CompiledRetry, f: TryFailure): boolean {
  const any5xx = ON_5XX | ON_GATEWAY | ON_RESET;
  switch (f) {
    case 'connect-failure':
      return (r.on & (any5xx | ON_CONNECT_FAILURE | ON_RESET_BEFORE_REQUEST)) !== 0;
    case 'reset-before-request':
      return (r.on & (any5xx | ON_RESET_BEFORE_REQUEST)) !== 0;
    case 'refused-stream':
      return (r.on & (any5xx | ON_REFUSED_STREAM)) !== 0;
    case 'reset':
    case 'per-try-timeout':
      return (r.on & any5xx) !== 0;
  }
}

/** Does the policy look at grpc-status at all (then trailers are worth waiting for)? */
export function retriesOnGrpc(r: CompiledRetry): boolean {
  return r.grpc !== 0;
}

/** Full-jitter exponential back-off before retry number `n` (1 = the first retry). */
export function backoffMs(r: CompiledRetry, n: number, random: () => number = Math.random): number {
  return fullJitterBackoff(r, n - 1, random);
}
