// What an instance's agent checks before a request reaches one of its local instances, in this
// order: header names with underscores (the mesh entry's headersWithUnderscoresAction), the
// intention (L4, or the L7 permission that fits the request), the instance itself, and its rate
// limit. One place for the inbound listener (HTTP/1.1 and HTTP/2) and for the same-agent path
// (outbound-http.ts), so that a check added here holds on every path into an instance. Each refusal
// is counted as an inbound request with its status.

import type { RequestInfo } from '../core/routing/types.js';
import type { EngineContext } from './context.js';
import { RATE_LIMITED_GRPC_STATUS, RATE_LIMITED_STATUS, rateLimited } from './rate-limiter.js';
import type { ProxyLocalInstance } from './types.js';
import { UNDERSCORE_REJECT_GRPC_STATUS, UNDERSCORE_REJECT_STATUS, underscoreRefusal } from './underscores.js';

/** How one protocol's request is read and changed by the checks (a set of functions, made once). */
export interface Admissible<T> {
  /** The names of its headers that hold an underscore; undefined when none. */
  underscoreNames(of: T): string[] | undefined;
  /** Remove those headers (DROP_HEADER), so the checks that follow and the instance see it without them. */
  dropHeaders(of: T, names: string[]): void;
  /** The request as intentions and rate limits read it. */
  info(of: T): RequestInfo;
}

/** Why the request does not reach the instance: the status to answer (and, for gRPC, the code). */
export interface Refusal {
  status: number;
  grpcStatus: number;
  message: string;
}

/**
 * The local instance `instanceId` of `destination` (none named: its first) if `source`'s request
 * passes every check, else the refusal to answer. `rateCharged`: the request already took a token
 * of this instance's limit (a resend on the same-agent path).
 */
export function admit<T>(
  ctx: EngineContext,
  source: string,
  destination: string,
  instanceId: string | undefined,
  of: T,
  kind: Admissible<T>,
  opts: { grpc: boolean; rateCharged?: boolean },
): ProxyLocalInstance | Refusal {
  const g = opts.grpc;
  const action = ctx.routing.headersWithUnderscores;
  if (action !== 'ALLOW') {
    const names = kind.underscoreNames(of);
    if (names !== undefined && action === 'REJECT_REQUEST')
      return refuse(
        ctx,
        source,
        destination,
        g,
        UNDERSCORE_REJECT_STATUS,
        UNDERSCORE_REJECT_GRPC_STATUS,
        underscoreRefusal(names),
      );
    // Dropped before the checks: intentions and rate limits see the request as the instance will.
    if (names !== undefined) kind.dropHeaders(of, names);
  }
  const decision = ctx.routing.intentionFor(source, destination, of, kind.info);
  if (!decision.allow) {
    ctx.metrics.denied.inc({ source, destination });
    return refuse(
      ctx,
      source,
      destination,
      g,
      403,
      7,
      `mesh: ${decision.reason} (${source} → ${destination})`,
    );
  }
  const inst = localInstanceOf(ctx, destination, instanceId);
  if (inst === undefined) {
    const which = instanceId === undefined ? '' : ` ${instanceId}`;
    return refuse(ctx, source, destination, g, 503, 14, `mesh: no local instance${which} of ${destination}`);
  }
  // The instance's limit counts every caller, this agent's own services included.
  const limited = opts.rateCharged === true ? undefined : rateLimited(ctx, inst, of, kind.info);
  if (limited !== undefined)
    return refuse(ctx, source, destination, g, RATE_LIMITED_STATUS, RATE_LIMITED_GRPC_STATUS, limited);
  return inst;
}

/** A refusal, counted as an inbound request with its status (a function, not a closure per request). */
function refuse(
  ctx: EngineContext,
  source: string,
  destination: string,
  grpc: boolean,
  status: number,
  grpcStatus: number,
  message: string,
): Refusal {
  ctx.metrics.request(
    'inbound',
    source,
    destination,
    status,
    undefined,
    grpc ? String(grpcStatus) : undefined,
  );
  return { status, grpcStatus, message };
}

/** The local instance a call names, or (none named) the first of the destination service. */
export function localInstanceOf(
  ctx: EngineContext,
  service: string,
  id: string | undefined,
): ProxyLocalInstance | undefined {
  return id === undefined ? ctx.routing.localInstances(service)[0] : ctx.routing.localInstance(service, id);
}

/** Whether `admit` refused. */
export const refused = (a: ProxyLocalInstance | Refusal): a is Refusal => 'message' in a;
