// What every probe shares: the result shape, the output bounds, and the deadline that turns a
// timeout or a cancellation into an abort of the probe's own sockets or process.
import type { CheckStatus } from '../core/catalog/types.js';

export interface ProbeResult {
  status: CheckStatus;
  output: string;
}

/**
 * Most bytes of a probe's own output (HTTP body, script stdout+stderr) kept in a result: 4 KiB, as
 * Consul. State truncates again to CHECK_OUTPUT_BYTES_MAX; this bound is what a probe buffers.
 */
export const PROBE_OUTPUT_BYTES_MAX = 4 * 1024;

/** Largest setTimeout delay Node honours (2^31 - 1 ms); a longer one would fire at once. */
export const TIMER_DELAY_MS_MAX = 2_147_483_647;

/** Why a probe's signal fired: its own deadline, or the runner cancelling it (stop, removal). */
export type AbortCause = 'timeout' | 'cancelled';

export interface Deadline {
  /** Aborts on the deadline or when the caller's signal aborts, whichever is first. */
  signal: AbortSignal;
  /** Set once `signal` has aborted. */
  cause(): AbortCause | undefined;
  /** Clears the timer and the listener on the caller's signal; call when the probe has settled. */
  dispose(): void;
}

/**
 * A signal for one probe. Not AbortSignal.any: on Node 20 it keeps a reference from the runner's
 * long-lived signal to every child until collection, and we want the listener gone as soon as the
 * probe ends.
 */
export function deadline(timeoutMs: number, parent: AbortSignal): Deadline {
  const ctl = new AbortController();
  let why: AbortCause | undefined;
  const fire = (c: AbortCause): void => {
    if (why !== undefined) return;
    why = c;
    ctl.abort(new Error(abortPhrase(c, timeoutMs)));
  };
  const onParent = (): void => fire('cancelled');
  const timer = setTimeout(() => fire('timeout'), Math.min(Math.max(1, timeoutMs), TIMER_DELAY_MS_MAX));
  if (parent.aborted) fire('cancelled');
  else parent.addEventListener('abort', onParent, { once: true });
  return {
    signal: ctl.signal,
    cause: () => why,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    },
  };
}

/** A readable reason from anything thrown or emitted as an error. */
export function reason(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** The phrase for an aborted probe: "timed out after 200 ms" or "cancelled". */
export function abortPhrase(cause: AbortCause, timeoutMs: number): string {
  return cause === 'timeout' ? `timed out after ${timeoutMs} ms` : 'cancelled (check stopped)';
}
