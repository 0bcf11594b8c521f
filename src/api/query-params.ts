// Query parameters shared by the read routes: flags, indexes and blocking-query waits
// (`?index=N&wait=D`, as Consul), with errors that name the parameter.
import { parseDurationMs } from '../config/duration.js';
import type { RequestContext } from './router.js';
import { MeshError } from './types.js';

/** Blocking queries wait at most this long (Consul: 10 minutes), 5 minutes when not given. */
export const WAIT_MAX_MS = 600_000;
export const WAIT_DEFAULT_MS = 300_000;
/** The parameters of a blocking read. */
export const BLOCKING_QUERY = ['index', 'wait'] as const;

export function flag(ctx: RequestContext, name: string): boolean {
  const v = ctx.query.get(name);
  if (v === null) return false;
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new MeshError('bad_request', `"${name}" is a flag: give it without a value, or true/false`);
}

export function nonNegInt(ctx: RequestContext, name: string): number | undefined {
  const v = ctx.query.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,15}$/.test(v))
    throw new MeshError(
      'bad_request',
      `"${name}" must be a non-negative integer, got ${JSON.stringify(v.slice(0, 40))}`,
    );
  return Number(v);
}

/** `?index=` and `?wait=` of a blocking read; minIndex undefined when the read does not block. */
export function blockingParams(ctx: RequestContext): { minIndex: number | undefined; waitMs: number } {
  const minIndex = nonNegInt(ctx, 'index');
  const waitRaw = ctx.query.get('wait');
  let waitMs = WAIT_DEFAULT_MS;
  if (waitRaw !== null) {
    waitMs = parseDurationMs(waitRaw, '"wait"');
    if (waitMs > WAIT_MAX_MS)
      throw new MeshError('bad_request', `"wait" must be at most 10m, got ${waitRaw}`);
  }
  return { minIndex, waitMs };
}

export function indexHeader(index: number): Record<string, string> {
  // Never 0, so a client can always use it as ?index= for the next blocking call (Consul does the same).
  return { 'X-Mesh-Index': String(Math.max(1, index)) };
}
