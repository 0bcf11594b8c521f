// L7 outbound for HTTP/1.1 on an upstream's loopback port (HTTP/2 and gRPC: outbound-h2.ts; what
// both share: outbound-common.ts). Each request is routed by the destination's chain (path,
// headers, method, query → route → split → target), meets its route's fault if it has one, and goes
// to a healthy instance by the target's balancer, over a pooled mTLS connection to that instance's
// agent (HTTP/1.1 to an instance on this agent goes straight to it); it is retried on another
// instance, after a back-off, when the route allows it and the request has no body (a streamed
// body cannot be replayed).

import type { IncomingHttpHeaders } from 'node:http2';
import type { Balancer } from '../core/routing/lb.js';
import type { RequestInfo, RouteDecision } from '../core/routing/types.js';
import type { HashPolicy } from '../core/state/kinds/load-balancer.js';
import { type Admissible, admit, refused } from './admission.js';
import type { EngineContext } from './context.js';
import { faultMessage } from './faults.js';
import type { Exchange } from './h1/exchange.js';
import {
  concernsInstance,
  type ForwardListener,
  type Outcome,
  STALE_SOCKET_RETRIES_MAX,
} from './h1/forward.js';
import { removeHeaders } from './h1/head.js';
import { modifyHead } from './header-ops.js';
import { INSTANCE_HEADER } from './inbound.js';
import { backoffMs, hashKeyOf, NONE_TRIED, pick, retryBudgetTake } from './outbound-common.js';
import { record } from './outbound-record.js';
import { peerTarget } from './peer-h1.js';
import { forwardTarget, type PoolTarget } from './pools.js';
import { RATE_LIMITED_STATUS } from './rate-limiter.js';
import { H1RequestInfo, splitUrl } from './request-info.js';
import { type HashKeySource, REQUEST_TIMEOUT_MS_DEFAULT } from './routing.js';
import { nextTraceparent } from './trace.js';
import type { ProxyEndpoint, ProxyUpstream } from './types.js';
import { h1UnderscoreNames } from './underscores.js';
import {
  type GateTicket,
  type GateWaiter,
  OVERLOADED_HEADER,
  OVERLOADED_STATUS,
  refuse,
  waitedTooLongMessage,
} from './upstream-gates.js';

type Headers = IncomingHttpHeaders;

/** Headers this agent sets on the hop, never taken from the caller. */
const OWN_HEADERS: ReadonlySet<string> = new Set([INSTANCE_HEADER, 'traceparent']);

/**
 * One HTTP/1.1 request on an upstream port: route it, then relay it to the picked instance through
 * that instance's agent (mTLS), or straight to it when it runs on this agent (same intentions).
 */
export function handleH1(ctx: EngineContext, up: ProxyUpstream, x: Exchange): void {
  new OutboundH1(ctx, up, x).start();
}

/** A request on the same-agent path, as the admission checks read and change it: as forwarded (its path after a prefixRewrite). */
const SAME_AGENT: Admissible<OutboundH1> = {
  underscoreNames: (o) => o.underscoreNames(),
  dropHeaders: (o, names) => o.dropHeaders(names),
  info: (o) => o.forwardedInfo(),
};

const OVERLOADED_LINES = [`${OVERLOADED_HEADER}: true`];

/** The attempts of one request: each picks an instance not tried yet, until one answers or none may. */
class OutboundH1 implements HashKeySource, ForwardListener, GateWaiter {
  private readonly startedMs = performance.now();
  /** When the first attempt could go out: the start, or the end of a fault's delay. */
  private firstAttemptMs = this.startedMs;
  private readonly path: string;
  private readonly query: string;
  private readonly info: RequestInfo;
  private readonly traceparent: string;
  /** The request's headers as forwarded (remade once if DROP_HEADER removes some: underscoresRefused). */
  private forwardedBlock: string;
  /** Instances whose attempt failed and was retried elsewhere: made at the first such retry. */
  private tried: Set<string> | undefined = undefined;
  private attempts = 0;
  private staleRetries = 0;
  /** Retries sent or about to be (stale-socket resends aside): the back-off grows with them. */
  private retries = 0;
  /** The next attempt is a retry the budget allowed (and was charged): counted as sent when it goes out. */
  private retrying = false;
  // The attempt under way, for forwarded().
  private endpoint: ProxyEndpoint | undefined = undefined;
  private balancer: Balancer | undefined = undefined;
  private decision: RouteDecision | undefined = undefined;
  private canRetry = false;
  private attemptStartedMs = 0;
  /** The local instance whose rate limit this request already took a token of. */
  private rateCharged: string | undefined = undefined;
  /** The path the attempt being made forwards (its route's, after a prefixRewrite). */
  private forwardPath = '';
  /** Where the request goes: decided once, so its retries stay on its route and split share. */
  private routed: RouteDecision | undefined = undefined;
  /** Its place at the caller's circuit breaker (upstreamConfig limits): a slot, or a wait for one. */
  private ticket: GateTicket | undefined = undefined;
  /** Waiting in the circuit breaker's queue (the ticket is a place in it, not a slot). */
  private queued = false;

  constructor(
    private readonly ctx: EngineContext,
    private readonly up: ProxyUpstream,
    private readonly x: Exchange,
  ) {
    const { path, query } = splitUrl(x.head.target);
    this.path = path;
    this.query = query;
    this.info = new H1RequestInfo(path, query, x.head.method, x.head);
    this.traceparent = nextTraceparent(x.head.traceparent);
    this.forwardedBlock = x.headerBlock(OWN_HEADERS);
  }

  /** Its header names with underscores (for a local instance's admission checks). */
  underscoreNames(): string[] | undefined {
    return h1UnderscoreNames(this.x.head);
  }

  /**
   * Remove headers from the request (the mesh entry's DROP_HEADER, for a local instance), so the
   * checks that follow and the instance see it without them. The entry is mesh-wide: any other
   * agent would drop them too, so a later attempt elsewhere loses nothing.
   */
  dropHeaders(names: string[]): void {
    removeHeaders(this.x.head, new Set(names));
    this.forwardedBlock = this.x.headerBlock(OWN_HEADERS);
  }

  /** The request as the attempt being made forwards it, for the checks of a local instance. */
  forwardedInfo(): RequestInfo {
    return new H1RequestInfo(this.forwardPath, this.query, this.x.head.method, this.x.head);
  }

  hashKey(policies: readonly HashPolicy[]): string | undefined {
    return hashKeyOf(policies, this.info.headers as Headers, this.query, () => this.x.remoteAddress);
  }

  /** Route the request, then meet its route's fault (if any), then make the first attempt. */
  start(): void {
    const { ctx, up } = this;
    const routed = ctx.routing.route(up.destination, this.info);
    if (routed === undefined) {
      this.answer(503, `mesh: no route to ${up.destination}`);
      return;
    }
    this.routed = routed;
    if (routed.requestHeaders !== undefined) {
      // The route's and split's changes, once: the checks of a local instance and every attempt
      // see the request as changed.
      modifyHead(this.x.head, routed.requestHeaders);
      this.forwardedBlock = this.x.headerBlock(OWN_HEADERS);
    }
    const f = routed.fault;
    if (f === undefined) {
      this.proceed();
      return;
    }
    const faults = ctx.routing.faults;
    const fault = faults.decide(f, up, ctx.metrics);
    const next = (): void => {
      if (!fault.abort) {
        this.proceed();
        return;
      }
      faults.aborted(up, ctx.metrics);
      this.answer(f.abortHttpStatus, faultMessage(up.destination, routed.routeIndex));
    };
    if (fault.delayMs === 0) {
      next();
      return;
    }
    faults.held();
    this.x.defer(
      fault.delayMs,
      () => {
        faults.released();
        // The delay is not the instance's: its latency and the budget's request run from here.
        this.firstAttemptMs = performance.now();
        next();
      },
      (status) => {
        faults.released();
        this.end(status);
      },
    );
  }

  /**
   * Past the caller's circuit breaker, if its limits allow: the first attempt goes now, or when a
   * slot comes free (bounded by the route's timeout), or the request is refused here with 503.
   * After a fault (as in Envoy: a delayed request holds no slot while it waits). The slot, or the
   * place in the queue, is given back when the exchange finishes, on every path (Exchange.onFinish).
   */
  private proceed(): void {
    const { ctx, up, x } = this;
    const gates = ctx.routing.gates;
    const entered = gates.enter(up, 'h1', this);
    if (entered === undefined) {
      this.attempt();
      return;
    }
    if ('refused' in entered) {
      this.answer(OVERLOADED_STATUS, refuse(ctx.metrics, up, entered), OVERLOADED_LINES);
      return;
    }
    const ticket = entered.ticket;
    this.ticket = ticket;
    this.queued = entered.queued;
    x.onFinish(() => {
      this.ticket = undefined;
      // Still queued: out of the queue, unless a slot was given to it meanwhile (then it is freed).
      const queued = this.queued;
      this.queued = false;
      if (!queued || !gates.cancel(ticket, this)) gates.leave(ticket);
    });
    if (!entered.queued) {
      this.attempt();
      return;
    }
    const limits = ticket.gate.limits;
    const waitMs = this.routed?.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    x.defer(
      waitMs,
      () => {
        // Counted under the limit it waited behind.
        ctx.metrics.limitRefused.inc({
          source: up.source,
          destination: up.destination,
          limit: 'maxConnections',
        });
        this.answer(OVERLOADED_STATUS, waitedTooLongMessage(up, limits, waitMs), OVERLOADED_LINES);
      },
      (status) => this.end(status),
    );
  }

  /** The circuit breaker let the waiting request through: it holds a slot now. */
  admitted(): void {
    this.queued = false;
    // Finished meanwhile (its hook gave the slot back): nothing to send.
    if (this.ticket === undefined) return;
    this.x.wake(() => this.attempt());
  }

  attempt(): void {
    const { ctx, up, x } = this;
    // One reading of each clock per attempt: the pick and the balancer's start share the wall
    // clock, and the first attempt's latency runs from the request's start.
    const wallMs = Date.now();
    const picked = pick(ctx, up, this.routed as RouteDecision, this.tried ?? NONE_TRIED, this, wallMs);
    if ('error' in picked) {
      this.answer(503, `mesh: ${picked.error}`);
      return;
    }
    const { endpoint, balancer, decision } = picked;
    this.forwardPath = decision.path;
    const canRetry = x.replayable && this.attempts < decision.numRetries;
    // A request that may be retried earns its share of the destination's retry budget (budgets
    // run on the monotonic clock: a wall-clock step must not empty or fill them).
    if (this.attempts === 0 && canRetry)
      ctx.routing.retryBudget(up.destination).onRequest(this.firstAttemptMs);
    this.attempts++;
    const target = endpoint.local
      ? localTarget(ctx, up, endpoint, this, this.rateCharged === endpoint.id)
      : peerTarget(ctx, up, endpoint, picked.connectTimeoutMs, x.head.upgrade);
    // A stale-socket resend to the same instance must not take a second token of its rate limit.
    if (endpoint.local && !('status' in target)) this.rateCharged = endpoint.id;
    if ('status' in target) {
      this.answer(target.status, target.message);
      return;
    }
    if (this.retrying) {
      // Charged to the budget when it was decided (budgetTake); counted as sent once it goes out.
      this.retrying = false;
      ctx.metrics.retries.inc({ source: up.source, destination: up.destination, result: 'sent' });
    }
    balancer.onStart(endpoint.id, wallMs);
    this.endpoint = endpoint;
    this.balancer = balancer;
    this.decision = decision;
    this.canRetry = canRetry;
    this.attemptStartedMs = this.attempts === 1 ? this.firstAttemptMs : performance.now();
    const q = this.query;
    x.forward(
      forwardTarget(
        target,
        x.startLine(x.head.method, q ? `${decision.path}?${q}` : decision.path),
        // The instance header tells a peer agent which of its instances was picked (it removes
        // it); an instance on this agent is called directly and must not see it either.
        endpoint.local
          ? `${this.forwardedBlock}\r\ntraceparent: ${this.traceparent}`
          : `${this.forwardedBlock}\r\ntraceparent: ${this.traceparent}\r\n${INSTANCE_HEADER}: ${endpoint.instanceId}`,
        picked.requestTimeoutMs,
        canRetry && decision.retryOnStatusCodes.length > 0
          ? (s: number) => decision.retryOnStatusCodes.includes(s) && this.budgetTake()
          : undefined,
        decision.responseHeaders,
      ),
      this,
    );
  }

  /** How the attempt under way ended: the response was relayed, or it is retried, or answered here. */
  forwarded(o: Outcome): void {
    const { ctx, up, x } = this;
    const endpoint = this.endpoint as ProxyEndpoint;
    const decision = this.decision as RouteDecision;
    const endedMs = performance.now();
    // This agent's own limits and a stale pooled socket say nothing of the instance: neither its
    // balancer's estimate nor its passive health check hears of them as failures.
    const concerns = concernsInstance(o);
    const ok = !concerns || o.status < 500;
    const wallMs = Date.now();
    // A 429 comes back fast: counted as a success, it would make a throttled instance look the
    // fastest and draw more calls. The balancer hears it as a failure; ejection does not.
    const balancerOk = ok && o.status !== RATE_LIMITED_STATUS;
    (this.balancer as Balancer).onEnd(endpoint.id, endedMs - this.attemptStartedMs, balancerOk, wallMs);
    if (concerns) ctx.routing.ejections.onResult(endpoint, ok);
    if (endpoint.local) ctx.metrics.request('inbound', up.source, endpoint.service, o.status);
    if (o.sentResponse) {
      this.end(o.status, endedMs);
      return;
    }
    const stale = o.staleSocket === true && x.replayable && this.staleRetries++ < STALE_SOCKET_RETRIES_MAX;
    // A stale connection never reached the instance: it may be picked again.
    // A status retry took its budget when the response was dropped (budgetTake); a connect
    // failure takes it now.
    const retry =
      stale ||
      (this.canRetry &&
        (o.retryable === true || (o.connectFailed && decision.retryOnConnectFailure && this.budgetTake())));
    if (!retry) {
      this.answer(o.status, `mesh: ${endpoint.service} via ${endpoint.inbound}: ${o.message}`);
      return;
    }
    // A stale pooled connection never reached the instance: sent again at once.
    if (stale) {
      this.attempt();
      return;
    }
    this.tried ??= new Set();
    this.tried.add(endpoint.id);
    this.retrying = true;
    const waitMs = backoffMs(ctx, ++this.retries);
    if (waitMs === 0) this.attempt();
    else
      x.defer(
        waitMs,
        () => this.attempt(),
        (status) => this.end(status),
      );
  }

  private budgetTake(): boolean {
    return retryBudgetTake(this.ctx, this.up);
  }

  /** Answered by this agent (no instance, denied, or the last attempt failed). */
  private answer(status: number, message: string, extra?: readonly string[]): void {
    this.x.reply(status, message, extra);
    this.end(status);
  }

  private end(status: number, endedMs = performance.now()): void {
    record(
      this.ctx,
      this.up,
      status,
      endedMs - this.startedMs,
      this.traceparent,
      this.x.head.method,
      this.path,
    );
    // Gives back its circuit breaker's slot, if it holds one (the hook set in proceed).
    this.x.finish();
  }
}

/**
 * An instance on this agent: the mTLS hop to itself would prove nothing this agent does not know,
 * so the call goes straight to the instance after the same checks the inbound side makes (admission.ts).
 */
function localTarget(
  ctx: EngineContext,
  up: ProxyUpstream,
  e: ProxyEndpoint,
  request: OutboundH1,
  rateCharged = false,
): PoolTarget | { status: number; message: string } {
  // The checks the instance's agent makes on its inbound side (admission.ts), on the request as
  // forwarded (its path after a prefixRewrite).
  const inst = admit(ctx, up.source, e.service, e.instanceId, request, SAME_AGENT, {
    grpc: false,
    rateCharged,
  });
  if (refused(inst)) return inst;
  return ctx.pools.localTarget(inst);
}
