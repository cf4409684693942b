// What the proxy knows of a downstream connection when it accepts it, and hands to
// everything that serves it: the source (the pod by its address in the current state, its
// address and port) and, for a connection captured for a Service, that Service port.
import type { Workload } from '../../control/api/snapshot.js';
import type { ServiceTarget } from '../state/proxy-state.js';
import type { SourceShare } from './source-limits.js';

/** Who the requests of one downstream connection come from. */
export interface Downstream {
  source: Workload | undefined;
  /** fairness and pooling key: the source pod's uid, else its address */
  sourceKey: string;
  sourceAddress: string;
  sourcePort: number;
}

/** A connection captured for a Service port: what every request on it starts from. */
export interface ConnInfo extends Downstream {
  /** the Service port the connection was captured for */
  target: ServiceTarget;
  /** what its source holds of the proxy (requests count against it); none: unbounded */
  share?: SourceShare;
}
