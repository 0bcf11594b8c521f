// The threshold state machine of one health check, as Consul's agent runs it
// (success_before_passing / failures_before_critical). Pure: a probe result goes in, the next
// progress comes out; the shell owns timers and I/O.
//
// Rules, per result:
// - passing:  successes += 1, failures = 0; the status turns passing once successes reaches
//             successBeforePassing (0 and 1 both mean at once). Until then the status stays as it was.
// - critical: failures += 1, successes = 0; the status turns critical once failures reaches
//             failuresBeforeCritical (0 and 1 both mean at once). Until then the status stays as it was.
// - warning:  the status turns warning at once and both counters reset. A warning means the
//             service answered, so it breaks a run of consecutive failures as much as a pass would;
//             the check is already non-passing, so resetting hides nothing from callers.
//   (Consul counts a warning as a success; we do not, so a warning never needs a threshold of passes
//   to show and never delays a later passing threshold.)
// - the output is always the latest result's, truncated to CHECK_OUTPUT_BYTES_MAX, even while a
//   threshold holds the status back: an operator looking at a flapping check sees the newest reason.
//
// Counters saturate at their threshold, so the state space is finite and nothing grows without bound.
import type { CheckDefinition, CheckStatus } from './types.js';

/** Largest check output kept in state and gossiped, in UTF-8 bytes (4 KiB, as Consul). */
export const CHECK_OUTPUT_BYTES_MAX = 4 * 1024;

/** Appended to output that was cut, so a reader knows there was more. */
const TRUNCATION_MARK = '…';
const TRUNCATION_MARK_BYTES = 3;

export interface CheckProgress {
  status: CheckStatus;
  output: string;
  /** Consecutive passing results, at most the passing threshold. */
  successes: number;
  /** Consecutive critical results, at most the critical threshold. */
  failures: number;
}

export function initialProgress(def: CheckDefinition): CheckProgress {
  assertThresholds(def);
  return { status: def.initialStatus, output: '', successes: 0, failures: 0 };
}

/** Apply one probe result; returns the new progress (the argument is not mutated). */
export function applyResult(
  p: CheckProgress,
  result: { status: CheckStatus; output: string },
  def: CheckDefinition,
): CheckProgress {
  assertThresholds(def);
  const output = truncateOutput(result.output, CHECK_OUTPUT_BYTES_MAX);
  switch (result.status) {
    case 'passing': {
      const need = threshold(def.successBeforePassing);
      const successes = Math.min(p.successes + 1, need);
      return { status: successes >= need ? 'passing' : p.status, output, successes, failures: 0 };
    }
    case 'critical': {
      const need = threshold(def.failuresBeforeCritical);
      const failures = Math.min(p.failures + 1, need);
      return { status: failures >= need ? 'critical' : p.status, output, successes: 0, failures };
    }
    case 'warning':
      return { status: 'warning', output, successes: 0, failures: 0 };
  }
}

/** Consul treats 0 like 1: the first result of the kind is enough. */
export function threshold(n: number): number {
  return Math.max(1, n);
}

/** An unpaired UTF-16 surrogate: not encodable as UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Cut `s` to at most `bytesMax` UTF-8 bytes on a code point boundary, ending in '…' when cut, and
 * replace unpaired surrogates with U+FFFD as a UTF-8 encoder would. Output reaches the catalog's
 * gossip, whose validation rejects strings that are not valid UTF-8, so a stray surrogate in a TTL
 * note must not make the whole instance record unsendable. Counts bytes without an encoder so the
 * core stays free of platform APIs.
 */
export function truncateOutput(s: string, bytesMax: number): string {
  if (!(Number.isSafeInteger(bytesMax) && bytesMax >= TRUNCATION_MARK_BYTES)) {
    throw new Error(
      `truncateOutput: bytesMax must be an integer ≥ ${TRUNCATION_MARK_BYTES}, got ${bytesMax}`,
    );
  }
  // Every code unit is at least one byte, so nothing past bytesMax + 1 units can survive the cut;
  // slicing first keeps the work bounded by bytesMax, not by the input.
  const head = s.length > bytesMax + 1 ? s.slice(0, bytesMax + 1) : s;
  const text = head.replace(LONE_SURROGATE, '\uFFFD');
  // Fast path: a UTF-16 code unit is at most 3 UTF-8 bytes.
  if (text.length * 3 <= bytesMax) return text;
  const budget = bytesMax - TRUNCATION_MARK_BYTES;
  let bytes = 0;
  let cut = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let width: number;
    let units = 1;
    if (c < 0x80) width = 1;
    else if (c < 0x800) width = 2;
    else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      width = 4;
      units = 2;
    } else width = 3;
    if (cut < 0 && bytes + width > budget) cut = i;
    bytes += width;
    if (bytes > bytesMax) return `${text.slice(0, cut)}${TRUNCATION_MARK}`;
    i += units - 1;
  }
  return text;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function assertThresholds(def: CheckDefinition): void {
  for (const [name, n] of [
    ['successBeforePassing', def.successBeforePassing],
    ['failuresBeforeCritical', def.failuresBeforeCritical],
  ] as const) {
    if (!(Number.isSafeInteger(n) && n >= 0)) {
      throw new Error(`check ${JSON.stringify(def.id)}: ${name} must be a non-negative integer, got ${n}`);
    }
  }
}
