// Durations in configuration: "500ms", "2s", "1.5m", "1h", or a plain number of milliseconds.
// The rule itself is the pure one in src/core/duration.ts; this adds the agent's error type.
import { MeshError } from '../api/types.js';
import { durationMsMax, durationMsUnchecked, formatDurationMs } from '../core/duration.js';
import { describe } from './host-port.js';

export { durationMsMax, formatDurationMs } from '../core/duration.js';

/** The durations a setting accepts, both ends included. */
export interface DurationRange {
  minMs: number;
  maxMs: number;
  /** Why the lower bound is there, shown with a value below it when the reason is not obvious. */
  minWhy?: string;
}

export const anyDuration: DurationRange = { minMs: 0, maxMs: durationMsMax };

/** A bound as an operator would write it; the timer limit is not a round number, so it says what it is. */
function formatBound(ms: number): string {
  return ms === durationMsMax
    ? `${ms}ms (about 24.8 days, the longest a timer can wait)`
    : formatDurationMs(ms);
}

/**
 * Milliseconds from a duration setting. A value that is not a duration at all and one that is a
 * duration out of `range` are different mistakes, and the message says which.
 */
export function parseDurationMs(v: unknown, what: string, range: DurationRange = anyDuration): number {
  const raw = durationMsUnchecked(v);
  if (raw === undefined) {
    throw new MeshError(
      'bad_request',
      `${what}: expected a duration like "500ms", "2s", "1m" or a number of milliseconds, got ${describe(v)}`,
    );
  }
  // Round first, so "0.4ms" is judged as the 0 ms the timer would get; a negative stays negative.
  const ms = raw < 0 ? raw : Math.round(raw);
  if (ms < range.minMs || ms > range.maxMs) {
    throw new MeshError(
      'bad_request',
      `${what}: must be from ${formatBound(range.minMs)} to ${formatBound(range.maxMs)}, got ${describe(v)}` +
        (ms < range.minMs && range.minWhy !== undefined ? ` (${range.minWhy})` : ''),
    );
  }
  return ms;
}
