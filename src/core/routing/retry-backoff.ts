// The wait before a retry: Envoy's default back-off, fully jittered and exponential. Retry n waits
// a random time in [0, min(base × (2^n − 1), max)), with base 25 ms and max ten times that. Sent at
// once, every caller's retries of one failure land together on the instances still standing; the
// jitter spreads them, and the growth gives a failing service room. The draw comes from the
// caller (the proxy's seeded generator).

export const RETRY_BACKOFF = Object.freeze({
  /** Envoy's base_interval default: short next to a request, long next to a connection reset. */
  baseIntervalMs: 25,
  /** Envoy's max_interval default, ten times the base: no retry waits longer than this. */
  maxIntervalMs: 250,
});

/**
 * How long retry number `retry` (1 for the first) waits, for a draw `rand` in [0, 1). Whole
 * milliseconds (timers count no finer); a draw outside [0, 1) is clamped.
 */
export function retryBackoffMs(
  retry: number,
  rand: number,
  baseIntervalMs: number = RETRY_BACKOFF.baseIntervalMs,
  maxIntervalMs: number = RETRY_BACKOFF.maxIntervalMs,
): number {
  // 2^n − 1 for n ≥ 1; past 30 doublings the cap binds for any sane base, and 2^31 stays exact.
  const n = Math.min(Math.max(1, Math.floor(retry)), 30);
  const ceilingMs = Math.min(baseIntervalMs * (2 ** n - 1), maxIntervalMs);
  const u = rand > 0 ? Math.min(rand, 1 - Number.EPSILON) : 0;
  return Math.floor(u * ceilingMs);
}
