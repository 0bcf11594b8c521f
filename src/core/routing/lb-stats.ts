// Per-endpoint state of a balancer, bounded while endpoint lists churn.
//
// Endpoints come and go (health, scaling, deploys), and the proxy never tells the balancer that
// one is gone for good, so state is kept per id and forgotten by two rules:
//   - idle: an entry untouched for STATS_IDLE_MS with nothing outstanding is dropped by a sweep
//     run at most every STATS_SWEEP_INTERVAL_MS;
//   - size: above `statsEntriesCap(n)` = clamp(4 × n, STATS_ENTRIES_MIN, STATS_ENTRIES_MAX) entries
//     (n = length of the last list picked from), idle entries are dropped least recently touched
//     first down to 3/4 of the cap (the slack makes sweeps amortised O(log size) per insert).
// Entries with requests in flight are kept so `onEnd` finds them, unless the table exceeds the
// hard STATS_ENTRIES_MAX, in which case the oldest go regardless; an `onEnd` for a forgotten id is
// then ignored, and outstanding counts are clamped at 0 rather than going negative.

/** Idle age after which an endpoint's state is forgotten: longer than any sane request, short
 * enough that a scaled-down service releases memory within minutes. */
export const STATS_IDLE_MS = 300_000;
/** How often the idle sweep may run (it is O(size)). */
export const STATS_SWEEP_INTERVAL_MS = 60_000;
/** Floor of the size cap, so a tiny list does not trigger sweeps on every new id. */
export const STATS_ENTRIES_MIN = 64;
/** Hard cap on entries per balancer, whatever the list size (≈ 1 MB of state at most). */
export const STATS_ENTRIES_MAX = 10_000;

/** The size above which a table sweeps, for a list of `endpointCount` endpoints. */
export function statsEntriesCap(endpointCount: number): number {
  return Math.min(STATS_ENTRIES_MAX, Math.max(STATS_ENTRIES_MIN, 4 * endpointCount));
}

export interface EndpointStats {
  /** Requests started and not yet ended (≥ 0). */
  outstanding: number;
  /** Last `nowMs` at which this entry was read or written. */
  lastSeenMs: number;
  /** round_robin: nginx smooth-weighted-RR "current weight". */
  rrCurrentWeight: number;
  /** ewma: latency estimate (ms) and the time it was last set. */
  ewmaLatencyMs: number;
  ewmaAtMs: number;
  /** ewma: false until a first real sample replaces the initial guess. */
  ewmaSampled: boolean;
}

export class StatsTable {
  private readonly entries = new Map<string, EndpointStats>();
  private endpointCount = 0;
  private lastIdleSweepMs = Number.NEGATIVE_INFINITY;
  /** Size after the last size sweep: in-flight entries it could not drop do not re-trigger it. */
  private sizeAfterSweep = 0;

  size(): number {
    return this.entries.size;
  }

  /** Remember the length of the list last picked from: it scales the size cap. */
  setEndpointCount(count: number): void {
    this.endpointCount = count;
  }

  peek(id: string): EndpointStats | undefined {
    return this.entries.get(id);
  }

  /** The entry of `id`, created if absent, marked as seen at `nowMs`. Call `maintain` afterwards. */
  touch(id: string, nowMs: number): EndpointStats {
    let e = this.entries.get(id);
    if (e === undefined) {
      e = {
        outstanding: 0,
        lastSeenMs: nowMs,
        rrCurrentWeight: 0,
        ewmaLatencyMs: 0,
        ewmaAtMs: nowMs,
        ewmaSampled: false,
      };
      this.entries.set(id, e);
    }
    if (nowMs > e.lastSeenMs) e.lastSeenMs = nowMs;
    return e;
  }

  /** Apply both forgetting rules. Called once per public operation, after its touches, so an
   * entry in use by the operation is the newest and the last to go. */
  maintain(nowMs: number): void {
    if (nowMs - this.lastIdleSweepMs >= STATS_SWEEP_INTERVAL_MS) {
      this.lastIdleSweepMs = nowMs;
      for (const [id, e] of this.entries) {
        if (e.outstanding === 0 && nowMs - e.lastSeenMs >= STATS_IDLE_MS) this.entries.delete(id);
      }
      this.sizeAfterSweep = Math.min(this.sizeAfterSweep, this.entries.size);
    }
    const cap = statsEntriesCap(this.endpointCount);
    const slack = Math.max(16, cap >> 2);
    // Growing the threshold geometrically past what the last sweep kept (in-flight entries)
    // keeps sweeps amortised even when little can be dropped.
    const kept = this.sizeAfterSweep;
    const threshold = Math.min(STATS_ENTRIES_MAX, Math.max(cap, kept + Math.max(slack, kept >> 2)));
    if (this.entries.size > threshold) this.sweepBySize(cap - slack);
    if (this.entries.size > STATS_ENTRIES_MAX) throw new Error('lb: stats table above its hard bound');
  }

  private sweepBySize(targetSize: number): void {
    const byAge = [...this.entries].sort((a, b) => a[1].lastSeenMs - b[1].lastSeenMs);
    for (const [id, e] of byAge) {
      if (this.entries.size <= targetSize) break;
      if (e.outstanding === 0) this.entries.delete(id);
    }
    // Only in-flight entries remain above target: keep them unless the hard bound is exceeded.
    const hardTarget = STATS_ENTRIES_MAX - (STATS_ENTRIES_MAX >> 2);
    if (this.entries.size > STATS_ENTRIES_MAX) {
      for (const [id] of byAge) {
        if (this.entries.size <= hardTarget) break;
        this.entries.delete(id);
      }
    }
    this.sizeAfterSweep = this.entries.size;
  }
}
