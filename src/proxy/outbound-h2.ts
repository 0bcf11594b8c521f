// L7 outbound for HTTP/2 and gRPC: each call on an upstream port is routed by the destination's
// chain like an HTTP/1.1 request (outbound-http.ts), relayed over a pooled HTTP/2 session (mTLS) to
// the picked instance's agent, and, on a route with numRetries, retried on another instance with
// its body kept for the purpose (h2-body.ts).

import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { RequestInfo } from '../core/routing/types.js';
import type { EngineContext } from './context.js';
import { ReplayBody } from './h2-body.js';
import {
  failedGrpcStatus,
  failsInstance,
  forwardH2,
  grpcStatusOf,
  isGrpc,
  replyH2Error,
  upstreamHeaders,
} from './h2-forward.js';
import { headerString, INSTANCE_HEADER } from './inbound.js';
import {
  hashKeyOf,
  NONE_TRIED,
  openPeer,
  peerKey,
  pick,
  retryBudgetAllows,
  splitUrl,
} from './outbound-http.js';
import { record } from './outbound-record.js';
import { ALPN_H2 } from './peer-tls.js';
import { RATE_LIMITED_GRPC_STATUS, RATE_LIMITED_STATUS } from './rate-limiter.js';
import type { HashKeySource } from './routing.js';
import { nextTraceparent } from './trace.js';
import type { ProxyUpstream } from './types.js';

type Headers = IncomingHttpHeaders;

const RESOURCE_EXHAUSTED = String(RATE_LIMITED_GRPC_STATUS);

/**
 * One HTTP/2 or gRPC call on an upstream port: route it, then relay it to the picked instance
 * through that instance's agent. On a route with `numRetries` the call's body is kept (up to
 * H2_BODY_LIMITS.replayBytesMax) and an answer the route retries is withheld from the caller while
 * the call is sent to another instance, within the destination's retry budget, as for HTTP/1.1.
 */
export async function handleH2Stream(
  ctx: EngineContext,
  up: ProxyUpstream,
  stream: ServerHttp2Stream,
  headers: Headers,
): Promise<void> {
  const startedMs = performance.now();
  const grpc = isGrpc(headers);
  const { path, query } = splitUrl(headerString(headers[':path']) ?? '/');
  const info: RequestInfo = { path, method: headerString(headers[':method']) ?? 'GET', headers, query };
  const traceparent = nextTraceparent(headers.traceparent);
  const request: HashKeySource = {
    hashKey: (p) => hashKeyOf(p, headers, query, () => stream.session?.socket?.remoteAddress ?? ''),
  };
  const budget = () => ctx.routing.retryBudget(up.destination);
  const budgetAllows = (): boolean => retryBudgetAllows(ctx, up);
  let status = 503;
  let grpcStatus = grpc ? '14' : undefined;
  /** The caller's body, kept once the route may retry the call. */
  let body: ReplayBody | undefined;
  let tried: Set<string> | undefined;
  // Bounded: each pass but the last is a retry, and a retry needs attempts < numRetries (≤ 10).
  for (let attempts = 0; ; attempts++) {
    const picked = pick(ctx, up, info, tried ?? NONE_TRIED, request, Date.now());
    if ('error' in picked) {
      status = 503;
      grpcStatus = grpc ? '14' : undefined;
      replyH2Error(stream, grpc, 503, 14, `mesh: ${picked.error}`);
      break;
    }
    const { endpoint, balancer, decision } = picked;
    if (attempts === 0 && decision.numRetries > 0) {
      body = new ReplayBody(stream);
      budget().onRequest(startedMs);
    }
    if (attempts > 0) {
      // Charged once it goes out, as for HTTP/1.1.
      budget().onRetry(performance.now());
      ctx.metrics.retries.inc({ source: up.source, destination: up.destination, result: 'sent' });
    }
    const canRetry = body?.replayable === true && attempts < decision.numRetries;
    const retryOn =
      canRetry && (decision.retryOnStatusCodes.length > 0 || (grpc && decision.retryOnGrpcCodes.length > 0))
        ? (s: number, g: string | undefined): boolean =>
            body?.replayable === true &&
            (decision.retryOnStatusCodes.includes(s) ||
              (grpc && g !== undefined && decision.retryOnGrpcCodes.includes(Number(g)))) &&
            budgetAllows()
        : undefined;
    balancer.onStart(endpoint.id, Date.now());
    const t0 = performance.now();
    const session = ctx.pools.h2Session(peerKey(endpoint, up.source), endpoint.service, {
      open: openPeer(ctx, endpoint, up.source, [ALPN_H2], picked.connectTimeoutMs),
      credentials: ctx.clientContext(up.source),
    });
    const fullPath = query ? `${decision.path}?${query}` : decision.path;
    const authority = headerString(headers[':authority']) ?? endpoint.service;
    const extra = { traceparent, [INSTANCE_HEADER]: endpoint.instanceId };
    const o = await forwardH2(
      stream,
      session,
      upstreamHeaders(headers, fullPath, authority, extra, [INSTANCE_HEADER, 'traceparent']),
      picked.requestTimeoutMs,
      { ...(body !== undefined ? { body } : {}), ...(retryOn !== undefined ? { retryOn } : {}) },
    );
    const ok = !failsInstance(grpc, o);
    // Throttled (429, RESOURCE_EXHAUSTED) is fast: a failure for the balancer, not for ejection.
    const throttled =
      o.status === RATE_LIMITED_STATUS || (grpc && grpcStatusOf(grpc, o) === RESOURCE_EXHAUSTED);
    balancer.onEnd(endpoint.id, performance.now() - t0, ok && !throttled, Date.now());
    ctx.routing.ejections.onResult(endpoint, ok);
    status = o.status;
    grpcStatus = grpcStatusOf(grpc, o);
    if (o.sentResponse) break;
    const retry =
      canRetry &&
      body?.replayable === true &&
      !stream.destroyed &&
      !stream.closed &&
      (o.retryable === true ||
        (o.connectFailed === true && decision.retryOnConnectFailure && budgetAllows()));
    if (retry) {
      tried ??= new Set();
      tried.add(endpoint.id);
      continue;
    }
    // No other attempt: the caller gets the failure (a no-op if it has gone).
    const why = `mesh: ${endpoint.service} via ${endpoint.inbound}: ${o.message}`;
    replyH2Error(stream, grpc, o.status, failedGrpcStatus(o), why);
    break;
  }
  body?.release();
  record(ctx, up, status, performance.now() - startedMs, traceparent, info.method, path, grpcStatus);
}
