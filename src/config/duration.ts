// Durations in configuration: "500ms", "2s", "1.5m", "1h", or a plain number of milliseconds.
// The rule itself is the pure one in src/core/duration.ts; this adds the agent's error type.
import { MeshError } from '../api/types.js';
import { durationMs } from '../core/duration.js';
import { describe } from './host-port.js';

export { durationMsMax, formatDurationMs } from '../core/duration.js';

export function parseDurationMs(v: unknown, what: string): number {
  const ms = durationMs(v);
  if (ms === undefined) {
    throw new MeshError(
      'bad_request',
      `${what}: expected a duration like "500ms", "2s", "1m" or a number of milliseconds, got ${describe(v)}`,
    );
  }
  return ms;
}
