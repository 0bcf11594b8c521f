// Load balancing for the proxy: one Balancer per destination target, asked for an endpoint per
// request (or connection) and told when each starts and ends.
//
// Pure core: time arrives as `nowMs`, randomness from the injected Rng, so the simulator can
// replay every choice from a seed. The proxy runs each balancer on one event loop; nothing here
// is shared between threads.
//
// Policies (files):
//   round_robin    nginx smooth weighted round robin, keyed by id        (lb-simple.ts)
//   random         weighted uniform                                       (lb-simple.ts)
//   least_request  P2C on (outstanding + 1) / weight, as Envoy            (lb-simple.ts)
//   ewma           P2C on peak-EWMA latency × (outstanding + 1), as Finagle/Linkerd (lb-ewma.ts)
//   ring_hash      consistent hashing on ctx.hashKey, ketama-style ring   (lb-ring.ts)
// Endpoint lists may change between any two calls; per-endpoint state is bounded and forgotten
// as described in lb-stats.ts. Weights: lb-common.ts `effectiveWeight` (integers 1–1000, else 1).
import type { Rng } from '../membership/types.js';
import type { Balancer, LbPolicy } from './lb-common.js';
import { EwmaBalancer, type EwmaOptions } from './lb-ewma.js';
import { RingHashBalancer } from './lb-ring.js';
import { LeastRequestBalancer, RandomBalancer, RoundRobinBalancer } from './lb-simple.js';

export {
  type Balancer,
  effectiveWeight,
  LB_POLICIES,
  LB_WEIGHT_MAX,
  type LbContext,
  type LbEndpoint,
  type LbPolicy,
} from './lb-common.js';
export {
  EWMA_DECAY_MS_DEFAULT,
  EWMA_FAILURE_PENALTY_MS_DEFAULT,
  EWMA_INITIAL_LATENCY_MS,
  EwmaBalancer,
  type EwmaOptions,
  peakEwmaUpdate,
} from './lb-ewma.js';
export {
  RING_POINTS_MAX,
  RING_SIZE_MAX_DEFAULT,
  RING_SIZE_MIN_DEFAULT,
  RingHashBalancer,
} from './lb-ring.js';
export { LeastRequestBalancer, RandomBalancer, RoundRobinBalancer } from './lb-simple.js';
export { STATS_ENTRIES_MAX, STATS_IDLE_MS, statsEntriesCap } from './lb-stats.js';

export interface BalancerOptions {
  /** ring_hash only. Sizes are clamped to RING_POINTS_MAX; min must not exceed max. */
  ringHash?: { minimumRingSize?: number; maximumRingSize?: number };
  /** ewma only: decayMs (default 10 000) and failurePenaltyMs (default 1 000). */
  ewma?: EwmaOptions;
}

/** A balancer for one target. Throws on an unknown policy or invalid options (a config error). */
export function createBalancer(policy: LbPolicy, rng: Rng, opts: BalancerOptions = {}): Balancer {
  switch (policy) {
    case 'round_robin':
      return new RoundRobinBalancer(rng);
    case 'random':
      return new RandomBalancer(rng);
    case 'least_request':
      return new LeastRequestBalancer(rng);
    case 'ewma':
      return new EwmaBalancer(rng, opts.ewma);
    case 'ring_hash':
      return new RingHashBalancer(rng, opts.ringHash);
    default: {
      const unknown: never = policy;
      throw new Error(`lb: unknown policy ${String(unknown)}`);
    }
  }
}
