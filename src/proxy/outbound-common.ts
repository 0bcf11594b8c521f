// What the outbound handlers of every protocol share (outbound-http.ts for HTTP/1.1, outbound-h2.ts
// for HTTP/2 and gRPC): the ring_hash key of a request, the connection to a peer agent, the pick of
// an instance for one attempt, and the retry budget and back-off.

import type { IncomingHttpHeaders } from 'node:http2';
import { retryBackoffMs } from '../core/routing/retry-backoff.js';
import type { RouteDecision } from '../core/routing/types.js';
import type { HashPolicy } from '../core/state/kinds/load-balancer.js';
import type { EngineContext } from './context.js';
import type { OnRead } from './h1/pool.js';
import { headerString } from './inbound.js';
import { connectPeer } from './peer-tls.js';
import type { HashKeySource, Picked } from './routing.js';
import type { ProxyEndpoint, ProxyUpstream } from './types.js';

type Headers = IncomingHttpHeaders;

/** The ring_hash key of a request: the first hash policy that yields a value. */
export function hashKeyOf(
  policies: readonly HashPolicy[],
  headers: Headers,
  query: string,
  sourceIp: () => string,
): string | undefined {
  for (const p of policies) {
    if ('sourceIp' in p) return sourceIp();
    const name = p.fieldValue;
    if (p.field === 'header') {
      const v = headerString(headers[name.toLowerCase()]);
      if (v !== undefined) return v;
    } else if (p.field === 'query_parameter') {
      const v = new URLSearchParams(query).get(name);
      if (v !== null) return v;
    } else {
      for (const part of String(headers.cookie ?? '').split(';')) {
        const eq = part.indexOf('=');
        if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
      }
    }
  }
  return undefined;
}

/** The pool key of a peer agent's connections for calls from `source` to `e`'s service. */
export function peerKey(e: ProxyEndpoint, source: string): string {
  return `${e.inbound}|${source}|${e.service}`;
}

/** Opens an mTLS connection to `e`'s agent as `source`, offering `alpn`. */
export function openPeer(
  ctx: EngineContext,
  e: ProxyEndpoint,
  source: string,
  alpn: readonly string[],
  connectTimeoutMs: number,
) {
  return (onread?: OnRead) => {
    const context = ctx.clientContext(source);
    if (!context) throw new Error(`no certificate for ${source} yet`);
    return connectPeer({
      onread,
      inbound: e.inbound,
      destination: e.service,
      trustDomain: ctx.trustDomain(),
      context,
      alpn,
      connectTimeoutMs,
      onHandshake: (resumed) => ctx.metrics.handshake(resumed),
    });
  };
}

/**
 * Take one retry of a call to `up`'s destination from its retry budget, if the budget allows it.
 * Checked and charged in one step when the retry is decided (before its back-off), so a burst of
 * failures cannot all pass the check before any of their retries counts; Envoy takes its retry
 * resource at the same point. A refusal is counted.
 */
export function retryBudgetTake(ctx: EngineContext, up: ProxyUpstream): boolean {
  const budget = ctx.routing.retryBudget(up.destination);
  const nowMs = performance.now();
  if (budget.canRetry(nowMs)) {
    budget.onRetry(nowMs);
    return true;
  }
  ctx.metrics.retries.inc({ source: up.source, destination: up.destination, result: 'budget_exhausted' });
  return false;
}

/** An instance for one attempt of a request `decision` routed (route() made it, once per request). */
export function pick(
  ctx: EngineContext,
  up: ProxyUpstream,
  decision: RouteDecision,
  tried: ReadonlySet<string>,
  request: HashKeySource,
  nowMs: number,
): Picked {
  if (!ctx.clientContext(up.source)) return { error: `no certificate for ${up.source} yet` };
  return ctx.routing.pickRouted(up.destination, decision, tried, nowMs, request);
}

/**
 * How long the retry after `retriesSoFar` failed attempts (1 for the first retry) waits: Envoy's
 * jittered exponential back-off (core/routing/retry-backoff.ts), drawn from the proxy's generator.
 */
export function backoffMs(ctx: EngineContext, retriesSoFar: number): number {
  return retryBackoffMs(retriesSoFar, ctx.routing.draw());
}

export const NONE_TRIED: ReadonlySet<string> = new Set();
