// L7 outbound for HTTP/2 and gRPC: each call on an upstream port is routed by the destination's
// chain like an HTTP/1.1 request (outbound-http.ts; what both share: outbound-common.ts), relayed over a pooled HTTP/2 session (mTLS) to
// the picked instance's agent, and, on a route with numRetries, retried on another instance with
// its body kept for the purpose (h2-body.ts).

import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { CompiledFault } from '../core/routing/fault.js';
import type { RequestInfo, RouteDecision } from '../core/routing/types.js';
import type { EngineContext } from './context.js';
import { faultMessage } from './faults.js';
import { ReplayBody } from './h2-body.js';
import {
  CALLER_CANCELLED_STATUS,
  failedGrpcStatus,
  failsInstance,
  forwardH2,
  grpcStatusOf,
  isGrpc,
  replyH2Error,
  upstreamHeaders,
} from './h2-forward.js';
import { modifyH2Headers } from './header-ops.js';
import { headerString, INSTANCE_HEADER } from './inbound.js';
import {
  backoffMs,
  hashKeyOf,
  NONE_TRIED,
  openPeer,
  peerKey,
  pick,
  retryBudgetTake,
} from './outbound-common.js';
import { record } from './outbound-record.js';
import { ALPN_H2 } from './peer-tls.js';
import { RATE_LIMITED_GRPC_STATUS, RATE_LIMITED_STATUS } from './rate-limiter.js';
import { splitUrl } from './request-info.js';
import type { HashKeySource } from './routing.js';
import { nextTraceparent } from './trace.js';
import type { ProxyUpstream } from './types.js';
import { OVERLOADED_GRPC_STATUS, OVERLOADED_HEADER, OVERLOADED_STATUS, refuse } from './upstream-gates.js';

type Headers = IncomingHttpHeaders;

const RESOURCE_EXHAUSTED = String(RATE_LIMITED_GRPC_STATUS);

/**
 * One HTTP/2 or gRPC call on an upstream port: route it, meet its route's fault if it has one,
 * then relay it to the picked instance through that instance's agent. On a route with
 * `numRetries` the call's body is kept (up to H2_BODY_LIMITS.replayBytesMax) and an answer the
 * route retries is withheld from the caller while the call is sent to another instance, after a
 * back-off and within the destination's retry budget, as for HTTP/1.1.
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
  const call: H2Call = {
    grpc,
    headers,
    query,
    info,
    traceparent: nextTraceparent(headers.traceparent),
    startedMs,
  };
  const end = await routeH2(ctx, up, stream, call);
  record(
    ctx,
    up,
    end.status,
    performance.now() - startedMs,
    call.traceparent,
    info.method,
    path,
    end.grpcStatus,
  );
}

/** One call's facts, read once. */
interface H2Call {
  grpc: boolean;
  headers: Headers;
  query: string;
  info: RequestInfo;
  traceparent: string;
  startedMs: number;
}

/** How a call ended, for the metrics and the access log. */
interface Ended {
  status: number;
  /** Undefined when the call is not gRPC. */
  grpcStatus: string | undefined;
}

const callerGone = (grpc: boolean): Ended => ({
  status: CALLER_CANCELLED_STATUS,
  grpcStatus: grpc ? '1' : undefined,
});

/**
 * Route the call and meet its route's fault: a delay holds it, an abort answers it here. Not async:
 * a call whose route has no fault goes to its attempts without a promise of its own.
 */
function routeH2(
  ctx: EngineContext,
  up: ProxyUpstream,
  stream: ServerHttp2Stream,
  call: H2Call,
): Promise<Ended> {
  const { grpc } = call;
  const decision = ctx.routing.route(up.destination, call.info);
  if (decision === undefined) {
    replyH2Error(stream, grpc, 503, 14, `mesh: no route to ${up.destination}`);
    return Promise.resolve({ status: 503, grpcStatus: grpc ? '14' : undefined });
  }
  const f = decision.fault;
  if (f === undefined) return gatedH2(ctx, up, stream, call, decision);
  return faultH2(ctx, up, stream, call, decision, f);
}

/**
 * Past the caller's circuit breaker (upstreamConfig limits) if it allows, then the call's attempts;
 * refused with 503 (gRPC UNAVAILABLE) at maxConcurrentRequests. HTTP/2 calls share one session per
 * destination agent, so none waits for a connection (Envoy's HTTP/2 circuit breakers do the same).
 */
function gatedH2(
  ctx: EngineContext,
  up: ProxyUpstream,
  stream: ServerHttp2Stream,
  call: H2Call,
  decision: RouteDecision,
): Promise<Ended> {
  const gates = ctx.routing.gates;
  const entered = gates.enter(up, 'h2');
  if (entered === undefined) return attemptsH2(ctx, up, stream, call, decision);
  if ('refused' in entered) {
    const { grpc } = call;
    replyH2Error(stream, grpc, OVERLOADED_STATUS, OVERLOADED_GRPC_STATUS, refuse(ctx.metrics, up, entered), {
      [OVERLOADED_HEADER]: 'true',
    });
    return Promise.resolve({
      status: OVERLOADED_STATUS,
      grpcStatus: grpc ? String(OVERLOADED_GRPC_STATUS) : undefined,
    });
  }
  const { ticket } = entered;
  return attemptsH2(ctx, up, stream, call, decision).finally(() => gates.leave(ticket));
}

/** A call on a route with a fault: drawn, then held, aborted, both, or sent on as usual. */
async function faultH2(
  ctx: EngineContext,
  up: ProxyUpstream,
  stream: ServerHttp2Stream,
  call: H2Call,
  decision: RouteDecision,
  f: CompiledFault,
): Promise<Ended> {
  const { grpc } = call;
  const fault = ctx.routing.faults.decide(f, up, ctx.metrics);
  if (fault.delayMs > 0 && !(await held(ctx, stream, fault.delayMs, true))) return callerGone(grpc);
  if (!fault.abort) return gatedH2(ctx, up, stream, call, decision);
  ctx.routing.faults.aborted(up, ctx.metrics);
  replyH2Error(
    stream,
    grpc,
    f.abortHttpStatus,
    f.abortGrpcStatus,
    faultMessage(up.destination, decision.routeIndex),
  );
  return { status: f.abortHttpStatus, grpcStatus: grpc ? String(f.abortGrpcStatus) : undefined };
}

/** The call's attempts: each to an instance not tried yet, until one answers or none may. */
async function attemptsH2(
  ctx: EngineContext,
  up: ProxyUpstream,
  stream: ServerHttp2Stream,
  call: H2Call,
  decision: RouteDecision,
): Promise<Ended> {
  const { grpc, headers, query, traceparent } = call;
  const request: HashKeySource = {
    hashKey: (p) => hashKeyOf(p, headers, query, () => stream.session?.socket?.remoteAddress ?? ''),
  };
  const budget = () => ctx.routing.retryBudget(up.destination);
  // Checked and charged in one step, when a retry is decided (retryBudgetTake).
  const budgetTake = (): boolean => retryBudgetTake(ctx, up);
  let end: Ended = { status: 503, grpcStatus: grpc ? '14' : undefined };
  /** The caller's body, kept once the route may retry the call. */
  let body: ReplayBody | undefined;
  let tried: Set<string> | undefined;
  // Bounded: each pass but the last is a retry, and a retry needs attempts < numRetries (≤ 10).
  for (let attempts = 0; ; attempts++) {
    if (attempts > 0 && !(await held(ctx, stream, backoffMs(ctx, attempts), false))) {
      end = callerGone(grpc);
      break;
    }
    const picked = pick(ctx, up, decision, tried ?? NONE_TRIED, request, Date.now());
    if ('error' in picked) {
      end = { status: 503, grpcStatus: grpc ? '14' : undefined };
      replyH2Error(stream, grpc, 503, 14, `mesh: ${picked.error}`);
      break;
    }
    const { endpoint, balancer } = picked;
    if (attempts === 0 && decision.numRetries > 0) {
      body = new ReplayBody(stream);
      // Now, not at the call's start: a fault's delay may lie between them.
      budget().onRequest(performance.now());
    }
    // Charged to the budget when decided (budgetTake); counted as sent once it goes out, as for HTTP/1.1.
    if (attempts > 0)
      ctx.metrics.retries.inc({ source: up.source, destination: up.destination, result: 'sent' });
    const canRetry = body?.replayable === true && attempts < decision.numRetries;
    const retryOn =
      canRetry && (decision.retryOnStatusCodes.length > 0 || (grpc && decision.retryOnGrpcCodes.length > 0))
        ? (s: number, g: string | undefined): boolean =>
            body?.replayable === true &&
            (decision.retryOnStatusCodes.includes(s) ||
              (grpc && g !== undefined && decision.retryOnGrpcCodes.includes(Number(g)))) &&
            budgetTake()
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
    const sent = upstreamHeaders(headers, fullPath, authority, extra, [INSTANCE_HEADER, 'traceparent']);
    if (decision.requestHeaders !== undefined) modifyH2Headers(sent, decision.requestHeaders);
    const o = await forwardH2(stream, session, sent, picked.requestTimeoutMs, {
      ...(body !== undefined ? { body } : {}),
      ...(retryOn !== undefined ? { retryOn } : {}),
      ...(decision.responseHeaders !== undefined ? { responseHeaders: decision.responseHeaders } : {}),
    });
    const ok = !failsInstance(grpc, o);
    // Throttled (429, RESOURCE_EXHAUSTED) is fast: a failure for the balancer, not for ejection.
    const throttled =
      o.status === RATE_LIMITED_STATUS || (grpc && grpcStatusOf(grpc, o) === RESOURCE_EXHAUSTED);
    balancer.onEnd(endpoint.id, performance.now() - t0, ok && !throttled, Date.now());
    ctx.routing.ejections.onResult(endpoint, ok);
    end = { status: o.status, grpcStatus: grpcStatusOf(grpc, o) };
    if (o.sentResponse) break;
    const retry =
      canRetry &&
      body?.replayable === true &&
      !stream.destroyed &&
      !stream.closed &&
      (o.retryable === true || (o.connectFailed === true && decision.retryOnConnectFailure && budgetTake()));
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
  return end;
}

/**
 * Hold a call `ms` (a fault's delay, counted among the agent's held requests, or a retry's
 * back-off). Resolves false if the caller went away meanwhile: nothing more is sent.
 */
function held(ctx: EngineContext, stream: ServerHttp2Stream, ms: number, isFault: boolean): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(!stream.destroyed && !stream.closed);
  if (isFault) ctx.routing.faults.held();
  return new Promise((resolve) => {
    const done = (open: boolean): void => {
      clearTimeout(timer);
      stream.off('close', onClose);
      if (isFault) ctx.routing.faults.released();
      resolve(open);
    };
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(!stream.destroyed && !stream.closed), ms);
    // As for HTTP/1.1: the wait alone never keeps a stopping worker alive.
    timer.unref();
    stream.once('close', onClose);
  });
}
