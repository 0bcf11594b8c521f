// Shared types, bounds and selection helpers of the load balancers (see lb.ts for the overview).
import type { Rng } from '../membership/types.js';

export type LbPolicy = 'round_robin' | 'least_request' | 'ewma' | 'ring_hash' | 'random';

export const LB_POLICIES: readonly LbPolicy[] = [
  'round_robin',
  'least_request',
  'ewma',
  'ring_hash',
  'random',
];

/**
 * One candidate instance. `id` is the instance id (unique within one list: a duplicated id is
 * treated as one endpoint whose weight is the sum of its entries' weights). `weight` is relative
 * traffic share, default 1; see `effectiveWeight` for what counts as valid.
 */
export interface LbEndpoint {
  readonly id: string;
  readonly weight?: number;
}

/** Per-pick input. `nowMs` is the shell's monotonic clock; `hashKey` is used by ring_hash only. */
export interface LbContext {
  hashKey?: string;
  nowMs: number;
}

export interface Balancer {
  readonly policy: LbPolicy;
  /**
   * Choose one of `endpoints` (returns undefined only when the list is empty). `exclude`: ids
   * already tried for this request (retries); avoided while any other endpoint exists. `ctx` is
   * valid for this call only (the proxy reuses one object for every pick): never keep it.
   */
  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined;
  /** A request/connection to `id` started (outstanding + 1). */
  onStart(id: string, nowMs: number): void;
  /** It ended after `latencyMs`; `ok` false for connect errors, 5xx and gRPC server errors (ewma penalises those). */
  onEnd(id: string, latencyMs: number, ok: boolean, nowMs: number): void;
  /** Requests/connections to `id` started and not yet ended. */
  outstanding(id: string): number;
  /** How many endpoints the balancer keeps state for (diagnostics and tests; see STATS_ENTRIES_MAX). */
  trackedEndpoints(): number;
}

/**
 * Largest weight honoured. Weights are small relative shares (as Envoy's 1–128 and nginx's
 * integers); the bound keeps ring_hash point counts and round-robin sums small and exact.
 */
export const LB_WEIGHT_MAX = 1000;

/**
 * The weight an endpoint is balanced with: its `weight` when that is an integer in
 * [1, LB_WEIGHT_MAX], otherwise 1. Invalid weights (0, negative, fractional, NaN, too large)
 * fall back to 1 rather than throw because the list comes from the catalog at request time and a
 * bad registration must not fail every request; to drain an endpoint, remove it from the list.
 */
export function effectiveWeight(endpoint: LbEndpoint): number {
  const w = endpoint.weight;
  if (w === undefined) return 1;
  return Number.isInteger(w) && w >= 1 && w <= LB_WEIGHT_MAX ? w : 1;
}

/** Throw on a clock value that cannot be a monotonic time: a shell bug, not a runtime condition. */
export function assertTime(nowMs: number): void {
  if (!Number.isFinite(nowMs)) throw new Error(`lb: nowMs must be a finite number, got ${nowMs}`);
}

/**
 * `endpoints` without the excluded ids, or `endpoints` itself when nothing would be left (a retry
 * to an already tried endpoint beats failing the request) or nothing is excluded. Allocates only
 * when an excluded id is actually present, which is the rare retry path.
 */
export function withoutExcluded(
  endpoints: readonly LbEndpoint[],
  exclude: ReadonlySet<string> | undefined,
): readonly LbEndpoint[] {
  if (exclude === undefined || exclude.size === 0) return endpoints;
  let excludedCount = 0;
  for (const e of endpoints) if (exclude.has(e.id)) excludedCount++;
  if (excludedCount === 0 || excludedCount === endpoints.length) return endpoints;
  const kept: LbEndpoint[] = [];
  for (const e of endpoints) if (!exclude.has(e.id)) kept.push(e);
  return kept;
}

/** An endpoint drawn with probability proportional to its effective weight. O(n). */
export function pickWeightedRandom(endpoints: readonly LbEndpoint[], rng: Rng): LbEndpoint | undefined {
  if (endpoints.length <= 1) return endpoints[0];
  let totalWeight = 0;
  for (const e of endpoints) totalWeight += effectiveWeight(e);
  let target = rng.next() * totalWeight;
  for (const e of endpoints) {
    target -= effectiveWeight(e);
    if (target < 0) return e;
  }
  // Only reachable through float rounding at the very top of the range.
  return endpoints[endpoints.length - 1];
}

/**
 * Two distinct positions in [0, n) drawn uniformly (n ≥ 2): the "two random choices" of P2C
 * (Mitzenmacher). Distinct so that a list of two always compares both.
 */
export function twoDistinctIndices(n: number, rng: Rng): [number, number] {
  if (!(Number.isInteger(n) && n >= 2)) throw new Error(`lb: need at least 2 candidates, got ${n}`);
  const first = Math.floor(rng.next() * n);
  let second = Math.floor(rng.next() * (n - 1));
  if (second >= first) second++;
  return [first, second];
}
