// The balancers that need no latency model: round_robin, random, least_request, and the base
// class that keeps outstanding counts for every policy.
import type { Rng } from '../membership/types.js';
import {
  assertTime,
  type Balancer,
  effectiveWeight,
  type LbContext,
  type LbEndpoint,
  type LbPolicy,
  pickWeightedRandom,
  twoDistinctIndices,
  withoutExcluded,
} from './lb-common.js';
import { type EndpointStats, StatsTable } from './lb-stats.js';

/** Outstanding-request bookkeeping shared by all policies; subclasses choose. */
export abstract class BaseBalancer implements Balancer {
  abstract readonly policy: LbPolicy;
  protected readonly stats = new StatsTable();

  constructor(protected readonly rng: Rng) {}

  abstract pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined;

  onStart(id: string, nowMs: number): void {
    assertTime(nowMs);
    this.stats.touch(id, nowMs).outstanding++;
    this.stats.maintain(nowMs);
  }

  onEnd(id: string, latencyMs: number, ok: boolean, nowMs: number): void {
    assertTime(nowMs);
    if (!(Number.isFinite(latencyMs) && latencyMs >= 0)) {
      throw new Error(`lb: latencyMs must be a finite number ≥ 0, got ${latencyMs}`);
    }
    // An id forgotten under the hard bound (see lb-stats.ts) has nothing left to end.
    if (this.stats.peek(id) === undefined) return;
    const e = this.stats.touch(id, nowMs);
    if (e.outstanding > 0) e.outstanding--;
    this.observe(id, latencyMs, ok, nowMs);
    this.stats.maintain(nowMs);
  }

  /** Latency feedback hook (ewma); the entry of `id` exists when called. */
  protected observe(_id: string, _latencyMs: number, _ok: boolean, _nowMs: number): void {}

  outstanding(id: string): number {
    return this.stats.peek(id)?.outstanding ?? 0;
  }

  trackedEndpoints(): number {
    return this.stats.size();
  }

  /** Common prologue of `pick`: validates time, records the list size, lets the stats table
   * forget (so idle state goes even when the proxy stops calling onStart), applies `exclude`. */
  protected candidates(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude: ReadonlySet<string> | undefined,
  ): readonly LbEndpoint[] {
    assertTime(ctx.nowMs);
    this.stats.setEndpointCount(endpoints.length);
    this.stats.maintain(ctx.nowMs);
    return withoutExcluded(endpoints, exclude);
  }
}

/**
 * nginx's smooth weighted round robin: each pick, every candidate's current weight grows by its
 * weight, the largest wins and drops by the total. Over any window of Σw picks each endpoint gets
 * exactly its weight, interleaved (a,a,b → a,b,a) rather than in bursts. State is keyed by id, so
 * reordering the list changes nothing, a newcomer starts at 0 and a removed endpoint simply stops
 * taking part. Excluded endpoints sit out the round, as nginx does for tried peers. O(n) per pick.
 */
export class RoundRobinBalancer extends BaseBalancer {
  readonly policy = 'round_robin' as const;

  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined {
    const list = this.candidates(endpoints, ctx, exclude);
    if (list.length <= 1) return list[0];
    let totalWeight = 0;
    let best: LbEndpoint | undefined;
    let bestStats: EndpointStats | undefined;
    for (const ep of list) {
      const w = effectiveWeight(ep);
      const e = this.stats.touch(ep.id, ctx.nowMs);
      e.rrCurrentWeight += w;
      totalWeight += w;
      // Strictly greater: ties go to the earlier endpoint, as in nginx.
      if (bestStats === undefined || e.rrCurrentWeight > bestStats.rrCurrentWeight) {
        best = ep;
        bestStats = e;
      }
    }
    if (best === undefined || bestStats === undefined) {
      throw new Error('lb: round robin found no candidate in a non-empty list');
    }
    bestStats.rrCurrentWeight -= totalWeight;
    this.stats.maintain(ctx.nowMs);
    return best;
  }
}

/** Weighted uniform random: stateless, so the right default when many proxies share a small set. */
export class RandomBalancer extends BaseBalancer {
  readonly policy = 'random' as const;

  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined {
    return pickWeightedRandom(this.candidates(endpoints, ctx, exclude), this.rng);
  }
}

/**
 * Power of two choices on outstanding requests, weighted as Envoy's least_request with
 * active_request_bias 1: of two distinct random candidates take the lower
 * (outstanding + 1) / weight. The "+ 1" makes weights matter between idle endpoints. Ties are
 * broken at random so equal endpoints share evenly. O(1) per pick (O(n) on retries with exclude).
 */
export class LeastRequestBalancer extends BaseBalancer {
  readonly policy = 'least_request' as const;

  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined {
    const list = this.candidates(endpoints, ctx, exclude);
    if (list.length <= 1) return list[0];
    const [i, j] = twoDistinctIndices(list.length, this.rng);
    const a = list[i] as LbEndpoint;
    const b = list[j] as LbEndpoint;
    const costA = (this.outstanding(a.id) + 1) / effectiveWeight(a);
    const costB = (this.outstanding(b.id) + 1) / effectiveWeight(b);
    if (costA !== costB) return costA < costB ? a : b;
    return this.rng.next() < 0.5 ? a : b;
  }
}
