// Durations as operators write them: "500ms", "2s", "1.5m", "1h", or a plain number of
// milliseconds. Pure, so config files (src/config) and service definitions (src/core/catalog)
// read them by one rule.

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Node's timers treat a delay above 2^31-1 ms as 1 ms, so no duration may exceed it (~24.8 days). */
export const durationMsMax = 2 ** 31 - 1;

/**
 * The milliseconds `v` is written as, in any range (negative, or beyond durationMsMax), not yet
 * rounded; undefined when `v` is not written as a duration at all. Callers tell "not a duration"
 * apart from "a duration out of range" with it, so an operator learns which mistake was made.
 */
export function durationMsUnchecked(v: unknown): number | undefined {
  let ms = Number.NaN;
  if (typeof v === 'number') {
    ms = v;
  } else if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
    if (m) ms = Number(m[1]) * (unitMs[m[2] ?? 'ms'] ?? Number.NaN);
  }
  return Number.isFinite(ms) ? ms : undefined;
}

/** Milliseconds, or undefined when `v` is not a duration in [0, durationMsMax]. */
export function durationMs(v: unknown): number | undefined {
  const ms = durationMsUnchecked(v);
  if (ms === undefined || ms < 0 || ms > durationMsMax) return undefined;
  return Math.round(ms);
}

/** "1500" → "1.5s": the shortest readable form, for messages and docs. */
export function formatDurationMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
