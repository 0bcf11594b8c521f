// The shell of service-defaults rate limits (src/core/routing/rate-limit.ts): a token bucket per
// local instance and limit, on the monotonic clock. Buckets outlive snapshots (a catalog change
// must not refill them) and go when their instance or limit does.

import {
  type CompiledRateLimits,
  compileRateLimits,
  limitAt,
  type RateLimit,
  TokenBucket,
} from '../core/routing/rate-limit.js';
import type { RequestInfo } from '../core/routing/types.js';
import type { EngineContext } from './context.js';
import type { ProxyLocalInstance, ProxySnapshot } from './types.js';

/** A refusal: which limit the request met. */
export interface RateLimited {
  limit: RateLimit;
  /** '' for the instance's own limit, else the route's path. */
  route: string;
}

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private compiled = new Map<string, CompiledRateLimits>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** The limits of a new snapshot: compiled once, and buckets of limits no longer there dropped. */
  apply(s: ProxySnapshot): void {
    const compiled = new Map<string, CompiledRateLimits>();
    const keep = new Set<string>();
    for (const inst of s.local) {
      if (inst.rateLimits === undefined) continue;
      compiled.set(inst.id, compileRateLimits(inst.rateLimits));
      keep.add(bucketKey(inst.id, -1, inst.rateLimits.instance, ''));
      inst.rateLimits.routes.forEach((r, i) => {
        keep.add(bucketKey(inst.id, i, r, routeText(r.match)));
      });
    }
    for (const k of this.buckets.keys()) if (!keep.has(k)) this.buckets.delete(k);
    this.compiled = compiled;
  }

  /** Whether `inst` may take this request now (a token is taken if so); the limit met if not. */
  take(inst: ProxyLocalInstance, req: () => RequestInfo): RateLimited | undefined {
    const c = this.compiled.get(inst.id);
    if (c === undefined) return undefined;
    const index = c.pick(req());
    if (index === undefined) return undefined;
    const limit = limitAt(c.limits, index) as RateLimit;
    const route = index < 0 ? '' : routeText(c.limits.routes[index]?.match);
    const key = bucketKey(inst.id, index, limit, route);
    const nowMs = this.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket(limit, nowMs);
      this.buckets.set(key, bucket);
    }
    if (bucket.take(nowMs)) return undefined;
    return { limit, route };
  }
}

/**
 * One bucket per instance and limit (its place, route and numbers): a changed limit starts with a
 * full bucket, and a route never inherits another's.
 */
function bucketKey(id: string, index: number, limit: RateLimit | undefined, route: string): string {
  return `${id}\u0000${index}\u0000${route}\u0000${limit?.requestsPerSecond}\u0000${limit?.requestsMaxBurst}`;
}

function routeText(m: { pathExact?: string; pathPrefix?: string; pathRegex?: string } | undefined): string {
  return m?.pathExact ?? (m?.pathPrefix !== undefined ? `${m.pathPrefix}*` : (m?.pathRegex ?? ''));
}

/** What a request over its instance's rate limit gets: 429 Too Many Requests (RFC 6585). */
export const RATE_LIMITED_STATUS = 429;
/** For gRPC, RESOURCE_EXHAUSTED: google.rpc.Code's status for a quota or rate exceeded. */
export const RATE_LIMITED_GRPC_STATUS = 8;

/**
 * Whether a request to local instance `inst` is over its rate limit: the refusal's text (counted),
 * or undefined when it may go (it took a token). `info(of)` is called only when the instance has
 * limits (a function and its argument: nothing is allocated per request without them).
 */
export function rateLimited<T>(
  ctx: EngineContext,
  inst: ProxyLocalInstance,
  of: T,
  info: (of: T) => RequestInfo,
): string | undefined {
  if (inst.rateLimits === undefined) return undefined;
  const r = ctx.routing.rateLimiter.take(inst, () => info(of));
  if (r === undefined) return undefined;
  ctx.metrics.rateLimited.inc({ service: inst.service });
  const what = r.route === '' ? inst.service : `${inst.service} ${r.route}`;
  return `mesh: rate limit of ${what} exceeded (${r.limit.requestsPerSecond} requests a second, bursts of ${r.limit.requestsMaxBurst})`;
}
