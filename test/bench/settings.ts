// What the suite runs and for how long: the full suite (`npm run bench`, under 15 minutes on
// a 2-core machine) or the quick one (--quick, every scenario briefly, ~2-3 minutes, to check
// the suite itself: its numbers mean little). The variants (the paths compared) and
// which scenario runs which of them are here too, so a reader sees the whole plan in one file.

export type Proto = 'h1' | 'h2' | 'grpc' | 'bulk' | 'echo';

/** The backend's ports (test/bench/pods/backend.ts, grpc-backend.ts); the Services use the same numbers. */
export const BACKEND_PORTS: Record<Proto, number> = { h1: 8080, h2: 8081, grpc: 50051, bulk: 9000, echo: 9001 };

export type VariantId =
  'direct' | 'nm-l4' | 'nm-l7' | 'nm-same-l4' | 'nm-same-l7' | 'hap-tcp-rsa' | 'hap-http-rsa' | 'hap-tcp-ecdsa' | 'hap-http-ecdsa';

export interface Variant {
  id: VariantId;
  label: string;
  /** who sends: the meshed client pod (its connections are redirected) or the unmeshed one */
  client: 'mesh/client' | 'plain/client';
  /** whose CPU and memory a request costs besides client and backend */
  proxies: 'none' | 'agents' | 'haproxy';
  /** the variant its ratios are taken against (req/s, CPU per request, added latency) */
  versus?: VariantId;
}

export const VARIANTS: Record<VariantId, Variant> = {
  direct: { id: 'direct', label: 'direct pod to pod (across nodes)', client: 'plain/client', proxies: 'none' },
  'nm-l4': { id: 'nm-l4', label: 'nodemesh L4 (tcp port, HBONE)', client: 'mesh/client', proxies: 'agents', versus: 'hap-tcp-rsa' },
  'nm-l7': { id: 'nm-l7', label: 'nodemesh L7 (http port, HBONE)', client: 'mesh/client', proxies: 'agents', versus: 'hap-http-rsa' },
  'nm-same-l4': { id: 'nm-same-l4', label: 'nodemesh L4, same node', client: 'mesh/client', proxies: 'agents', versus: 'nm-l4' },
  'nm-same-l7': { id: 'nm-same-l7', label: 'nodemesh L7, same node', client: 'mesh/client', proxies: 'agents', versus: 'nm-l7' },
  'hap-tcp-rsa': { id: 'hap-tcp-rsa', label: 'HAProxy pair, TCP mode, RSA-2048', client: 'plain/client', proxies: 'haproxy' },
  'hap-http-rsa': { id: 'hap-http-rsa', label: 'HAProxy pair, HTTP mode, RSA-2048', client: 'plain/client', proxies: 'haproxy' },
  'hap-tcp-ecdsa': {
    id: 'hap-tcp-ecdsa',
    label: 'HAProxy pair, TCP mode, ECDSA P-256',
    client: 'plain/client',
    proxies: 'haproxy',
    versus: 'hap-tcp-rsa',
  },
  'hap-http-ecdsa': {
    id: 'hap-http-ecdsa',
    label: 'HAProxy pair, HTTP mode, ECDSA P-256',
    client: 'plain/client',
    proxies: 'haproxy',
    versus: 'hap-http-rsa',
  },
};

export interface Settings {
  quick: boolean;
  rounds: number;
  latency: {
    /** req/s → seconds measured per run (after the warm-up) */
    rates: { rate: number; seconds: number; variants: VariantId[] }[];
    warmupSeconds: number;
    /** keep-alive connections of the open-loop generator at a rate */
    connections: (rate: number) => number;
  };
  saturation: {
    /** wrk (HTTP/1.1), h2load (HTTP/2), h2load posting gRPC messages: seconds per run (whole), at each concurrency */
    tools: { tool: 'wrk' | 'h2load' | 'grpc'; seconds: number; concurrency: number[]; variants: VariantId[] }[];
    /**
     * the same load, unmeasured, right before each measured run (whole seconds; 0: none): the
     * variant's proxies meet the measured run warm, whatever the variant before it left them
     * (its JIT'd code, its pools and connections, its caches), as a proxy that has been carrying
     * traffic is
     */
    warmupSeconds: number;
  };
  /**
   * warmupSeconds: the same load, unmeasured, right before each measured run (0: none), as in
   * saturation: a proxy carrying a stream has its buffers' memory in use; one that has been
   * idle gave it back (the agents' allocator purges what stays free for 10 s, and the next
   * stream faults it in again: ARCHITECTURE.md, "Agent memory")
   */
  bulk: { seconds: number; warmupSeconds: number; variants: VariantId[] };
  capture: { connections: number };
  /**
   * the many-pods lab: one node per count of meshed pods; RSS readings (1 s apart) per agent,
   * then each agent's CPU over idleCpuSeconds with no traffic
   */
  pods: { steps: number[]; settleSeconds: number; samples: number; settleMaxSeconds: number; idleCpuSeconds: number };
  /** connections held through the L4 path while the agents' memory is read (RSS readings 1 s apart) */
  held: { connections: number; settleSeconds: number; samples: number };
  /** changes: at most this many, and no new one after maxSeconds (a change at this scale can take seconds) */
  controlPlane: { services: number; endpointsPerService: number; agents: number; changes: number; maxSeconds: number };
}

const ALL_HTTP: VariantId[] = ['direct', 'nm-l4', 'nm-l7', 'nm-same-l7', 'hap-tcp-rsa', 'hap-http-rsa', 'hap-tcp-ecdsa', 'hap-http-ecdsa'];
// To keep the suite within its time: the anchors of the issue (1,000 req/s, wrk) run every
// variant; the other rates and protocols run the comparisons the targets are about. ECDSA
// changes the handshake only (on kept-alive connections the records are the same AES-GCM),
// and the same-node path has its own rows at the anchors.
const CORE_HTTP: VariantId[] = ['direct', 'nm-l4', 'nm-l7', 'hap-tcp-rsa', 'hap-http-rsa'];
const BULK: VariantId[] = ['direct', 'nm-l4', 'nm-same-l4', 'hap-tcp-rsa', 'hap-tcp-ecdsa'];

export function settings(quick: boolean): Settings {
  if (quick) {
    // every scenario, every variant and every tool at least once, two rounds, briefly
    const FEW: VariantId[] = ['direct', 'nm-l7', 'hap-http-rsa'];
    return {
      quick,
      rounds: 2,
      latency: {
        rates: [
          { rate: 500, seconds: 0.3, variants: ['direct', 'nm-l7'] },
          { rate: 1000, seconds: 0.3, variants: ALL_HTTP },
          { rate: 5000, seconds: 0.3, variants: ['direct', 'nm-l7'] },
        ],
        warmupSeconds: 0.1,
        connections: (rate) => Math.max(16, Math.ceil(rate / 100)),
      },
      saturation: {
        tools: [
          { tool: 'wrk', seconds: 1, concurrency: [16], variants: ALL_HTTP },
          { tool: 'h2load', seconds: 1, concurrency: [64], variants: FEW },
          { tool: 'grpc', seconds: 1, concurrency: [16], variants: FEW },
        ],
        warmupSeconds: 0,
      },
      bulk: { seconds: 0.3, warmupSeconds: 0, variants: BULK },
      capture: { connections: 30 },
      pods: { steps: [0, 5, 10], settleSeconds: 0, samples: 2, settleMaxSeconds: 30, idleCpuSeconds: 2 },
      held: { connections: 300, settleSeconds: 1, samples: 1 },
      controlPlane: { services: 100, endpointsPerService: 10, agents: 10, changes: 3, maxSeconds: 20 },
    };
  }
  return {
    quick,
    rounds: 3,
    latency: {
      rates: [
        { rate: 500, seconds: 2, variants: CORE_HTTP },
        { rate: 1000, seconds: 2, variants: ALL_HTTP },
        { rate: 5000, seconds: 1.5, variants: CORE_HTTP },
      ],
      warmupSeconds: 0.5,
      connections: (rate) => Math.max(16, Math.ceil(rate / 100)),
    },
    saturation: {
      // wrk at c16 is the anchor: two seconds; the others one
      tools: [
        { tool: 'wrk', seconds: 2, concurrency: [16, 64], variants: ALL_HTTP },
        { tool: 'h2load', seconds: 1, concurrency: [16, 64], variants: CORE_HTTP },
        { tool: 'grpc', seconds: 1, concurrency: [16, 64], variants: CORE_HTTP },
      ],
      warmupSeconds: 1,
    },
    bulk: { seconds: 1.5, warmupSeconds: 1, variants: BULK },
    capture: { connections: 500 },
    // the 0, 100 and 500: a lab node of more than 250 pods gets a /23 of pod
    // addresses (deploy/lab/lab-plan.ts); `lab up` of the 600 pods takes ~2 minutes here
    pods: { steps: [0, 100, 500], settleSeconds: 2, samples: 3, settleMaxSeconds: 150, idleCpuSeconds: 30 },
    held: { connections: 10_000, settleSeconds: 2, samples: 3 },
    controlPlane: { services: 1000, endpointsPerService: 10, agents: 10, changes: 20, maxSeconds: 90 },
  };
}
