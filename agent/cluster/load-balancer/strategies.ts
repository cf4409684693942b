// Every load-balancing strategy a cluster may use, loaded (and so registered with the
// registry, load-balancer.ts) by importing this module once. A new strategy is a new file
// that calls registerBalancer, and one more line here.
import './least-request.js';
import './round-robin.js';
import './random.js';
import './peak-ewma.js';
import './consistent-hash.js';
