// Latency-aware P2C with a peak EWMA cost, as Finagle's `Balancers.p2cPeakEwma` and Linkerd's
// (tower's) PeakEwma balancer do.
//
// cost(endpoint) = estimateMs × (outstanding + 1) / weight
// On a sample s (a request's latency; a failure counts as max(latency, failurePenaltyMs)):
//   s > estimate → estimate = s                           (peak: react at once to slowness)
//   otherwise    → estimate = estimate·w + s·(1 − w),  w = exp(−elapsedMs / decayMs)
// where elapsedMs is the time since the estimate was last set: the estimate forgets with a time
// constant, not a sample count, so a busy endpoint and a quiet one age alike.
// An endpoint whose estimate is above the reference latency (the median estimate of the listed
// endpoints) also ages while it gets no samples: its cost decays as estimate·exp(−idle/decayMs),
// down to the reference. Without this a slow endpoint would never be picked again and could not
// show it has recovered (the same role as tower's decay toward zero, but floored so that a long-idle
// endpoint is probed at par rather than flooded). Newcomers start at the reference too: tried at
// once, and their growing outstanding count limits how much they take before their first sample.
import type { Rng } from '../membership/types.js';
import { effectiveWeight, type LbContext, type LbEndpoint, twoDistinctIndices } from './lb-common.js';
import { BaseBalancer } from './lb-simple.js';
import type { EndpointStats } from './lb-stats.js';

/** Time constant of the EWMA: Finagle's and linkerd2-proxy's default. Shorter reacts faster to
 * recovery but follows noise; longer keeps a slow endpoint out for longer. */
export const EWMA_DECAY_MS_DEFAULT = 10_000;
/** Latency charged for a failed request: a fast failure (connection refused in 1 ms) must not make
 * a broken endpoint look like the fastest one and draw all traffic. */
export const EWMA_FAILURE_PENALTY_MS_DEFAULT = 1_000;
/** Reference latency before any endpoint has a sample; only its ratio to real samples matters. */
export const EWMA_INITIAL_LATENCY_MS = 1;
/** Samples are raised to this floor so that cost keeps growing with outstanding even for
 * latencies below measurement resolution. */
export const EWMA_LATENCY_FLOOR_MS = 0.01;
/** The reference latency (a median, O(n log n)) is recomputed at most this often. */
export const EWMA_REFERENCE_REFRESH_MS = 1_000;

export interface EwmaOptions {
  decayMs?: number;
  failurePenaltyMs?: number;
}

/** The peak-EWMA update of `estimateMs` (set at `atMs`) with a sample taken at `nowMs`. */
export function peakEwmaUpdate(
  estimateMs: number,
  atMs: number,
  sampleMs: number,
  nowMs: number,
  decayMs: number,
): number {
  if (sampleMs > estimateMs) return sampleMs;
  const w = Math.exp(-Math.max(0, nowMs - atMs) / decayMs);
  return estimateMs * w + sampleMs * (1 - w);
}

/** The estimate used for cost: above the reference it decays toward it while no sample arrives. */
export function agedEstimateMs(
  estimateMs: number,
  atMs: number,
  nowMs: number,
  decayMs: number,
  referenceMs: number,
): number {
  if (estimateMs <= referenceMs) return estimateMs;
  const decayed = estimateMs * Math.exp(-Math.max(0, nowMs - atMs) / decayMs);
  return Math.max(referenceMs, decayed);
}

/** Median of a non-empty list (sorts it in place). */
export function medianOf(values: number[]): number {
  if (values.length === 0) throw new Error('lb: median of an empty list');
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1
    ? (values[mid] as number)
    : ((values[mid - 1] as number) + (values[mid] as number)) / 2;
}

function positiveOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isFinite(value) && value > 0))
    throw new Error(`lb: ewma.${name} must be a positive number, got ${value}`);
  return value;
}

export class EwmaBalancer extends BaseBalancer {
  readonly policy = 'ewma' as const;
  private readonly decayMs: number;
  private readonly failurePenaltyMs: number;
  private referenceMs = EWMA_INITIAL_LATENCY_MS;
  private referenceAtMs = Number.NEGATIVE_INFINITY;

  constructor(rng: Rng, opts: EwmaOptions = {}) {
    super(rng);
    this.decayMs = positiveOption(opts.decayMs, EWMA_DECAY_MS_DEFAULT, 'decayMs');
    this.failurePenaltyMs = positiveOption(
      opts.failurePenaltyMs,
      EWMA_FAILURE_PENALTY_MS_DEFAULT,
      'failurePenaltyMs',
    );
  }

  pick(
    endpoints: readonly LbEndpoint[],
    ctx: LbContext,
    exclude?: ReadonlySet<string>,
  ): LbEndpoint | undefined {
    const list = this.candidates(endpoints, ctx, exclude);
    if (list.length <= 1) return list[0];
    if (ctx.nowMs - this.referenceAtMs >= EWMA_REFERENCE_REFRESH_MS)
      this.refreshReference(endpoints, ctx.nowMs);
    const [i, j] = twoDistinctIndices(list.length, this.rng);
    const a = list[i] as LbEndpoint;
    const b = list[j] as LbEndpoint;
    // Divided by the weight, as tower's weighted load and Envoy's weighted least_request do.
    const costA = this.cost(this.stats.touch(a.id, ctx.nowMs), ctx.nowMs) / effectiveWeight(a);
    const costB = this.cost(this.stats.touch(b.id, ctx.nowMs), ctx.nowMs) / effectiveWeight(b);
    this.stats.maintain(ctx.nowMs);
    if (costA !== costB) return costA < costB ? a : b;
    return this.rng.next() < 0.5 ? a : b;
  }

  /** Current estimate of `id` in ms (undefined when untracked); for diagnostics and tests. */
  estimateMs(id: string, nowMs: number): number | undefined {
    const e = this.stats.peek(id);
    if (e === undefined) return undefined;
    return agedEstimateMs(e.ewmaLatencyMs, e.ewmaAtMs, nowMs, this.decayMs, this.referenceMs);
  }

  private cost(e: EndpointStats, nowMs: number): number {
    if (!e.ewmaSampled && e.ewmaLatencyMs === 0) {
      // A newcomer: start at the reference (see the header).
      e.ewmaLatencyMs = this.referenceMs;
      e.ewmaAtMs = nowMs;
    }
    const estimate = agedEstimateMs(e.ewmaLatencyMs, e.ewmaAtMs, nowMs, this.decayMs, this.referenceMs);
    return estimate * (e.outstanding + 1);
  }

  private refreshReference(endpoints: readonly LbEndpoint[], nowMs: number): void {
    this.referenceAtMs = nowMs;
    const sampled: number[] = [];
    for (const ep of endpoints) {
      const e = this.stats.peek(ep.id);
      if (e?.ewmaSampled) sampled.push(e.ewmaLatencyMs);
    }
    this.referenceMs = sampled.length > 0 ? medianOf(sampled) : EWMA_INITIAL_LATENCY_MS;
  }

  protected override observe(id: string, latencyMs: number, ok: boolean, nowMs: number): void {
    const e = this.stats.peek(id);
    if (e === undefined) throw new Error(`lb: ewma observe without stats for ${id}`);
    const sampleMs = Math.max(
      EWMA_LATENCY_FLOOR_MS,
      ok ? latencyMs : Math.max(latencyMs, this.failurePenaltyMs),
    );
    // The first real sample replaces the initial guess outright: the guess carries no information.
    e.ewmaLatencyMs = e.ewmaSampled
      ? peakEwmaUpdate(e.ewmaLatencyMs, e.ewmaAtMs, sampleMs, nowMs, this.decayMs)
      : sampleMs;
    e.ewmaAtMs = nowMs;
    e.ewmaSampled = true;
    if (!(Number.isFinite(e.ewmaLatencyMs) && e.ewmaLatencyMs > 0)) {
      throw new Error(`lb: ewma estimate for ${id} became ${e.ewmaLatencyMs}`);
    }
  }
}
