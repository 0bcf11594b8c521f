// W3C trace context (https://www.w3.org/TR/trace-context/): the proxy continues a caller's trace
// or starts one, so a request can be followed across services without touching their code.

import { randomBytes } from 'node:crypto';

/**
 * Version, trace id, parent id, flags; lowercase hex only (§3.2.2: upper case makes it invalid).
 * A later version may add fields after a `-`; version 00 may not.
 */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Random ids come from a pool of random hex, decoded at once: one syscall and one decode per 170
 * requests, and an id is then a slice of a flat string (cheaper to build into a head than a
 * per-request decode).
 */
const POOL_BYTES = 4096;
let pool = '';
let poolAt = 0;
function randomHex(bytes: number): string {
  const chars = 2 * bytes;
  if (poolAt + chars > pool.length) {
    pool = randomBytes(POOL_BYTES).toString('hex');
    poolAt = 0;
  }
  const s = pool.slice(poolAt, poolAt + chars);
  poolAt += chars;
  return s;
}

/**
 * The traceparent to send upstream: the caller's trace id and flags with a new span id (this hop),
 * or a new sampled trace when the header is absent or malformed (as the spec asks: restart).
 */
export function nextTraceparent(incoming: string | string[] | undefined): string {
  const v = Array.isArray(incoming) ? incoming[0] : incoming;
  const m = v === undefined ? null : TRACEPARENT.exec(v.trim());
  // A later version is read by its first four fields and continued as version 00 (§4.3).
  const valid = m !== null && m[1] !== 'ff' && (m[1] !== '00' || m[5] === undefined);
  if (valid && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) return `00-${m[2]}-${randomHex(8)}-${m[4]}`;
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** The trace id of a traceparent (for access logs), or ''. */
export function traceIdOf(traceparent: string): string {
  return TRACEPARENT.exec(traceparent)?.[2] ?? '';
}
