// The caller-side circuit breakers of this agent (service-defaults upstreamConfig limits): one gate
// per calling service and destination, made when a call meets limits and forgotten when nothing is
// in flight or waiting, so the gates held are bounded by the calls in flight (themselves bounded
// by the listeners' connection limit). Counting and queueing are the pure core's
// (core/routing/upstream-limits.ts); this part keeps the gates, wakes the requests they let
// through, and words and counts the refusals.

import { type CallKind, type Entered, LimitGate, type LimitName } from '../core/routing/upstream-limits.js';
import type { UpstreamLimits } from '../core/state/kinds/upstream-config.js';
import { PENDING_REQUESTS_DEFAULT } from '../core/state/kinds/upstream-config.js';
import type { ProxyMetrics } from './metrics.js';
import type { ProxyUpstream } from './types.js';

/** A request waiting at a gate: told when it holds a slot. */
export interface GateWaiter {
  admitted(): void;
}

/** A call's place at a gate: pass it back to leave (it held a slot) or cancel (it waited). */
export interface GateTicket {
  readonly key: string;
  readonly gate: LimitGate<GateWaiter>;
}

interface Held {
  source: string;
  destination: string;
  gate: LimitGate<GateWaiter>;
}

/** The header on every answer a gate refuses: the caller's own agent refused it, the destination never saw it (Envoy's x-envoy-overloaded). */
export const OVERLOADED_HEADER = 'x-mesh-overloaded';
/** Refused by a gate: 503, and gRPC's UNAVAILABLE, which a client may retry after a back-off. */
export const OVERLOADED_STATUS = 503;
export const OVERLOADED_GRPC_STATUS = 14;

/** TCP, HTTP/2 and gRPC calls never wait at a gate. */
const NEVER_WAITS: GateWaiter = { admitted: () => undefined };

const keyOf = (source: string, destination: string): string => `${source}\u0000${destination}`;

export class UpstreamGates {
  private readonly held = new Map<string, Held>();

  /** `limitsNow`: the limits of a pair in the snapshot applied last (none: not limited). */
  constructor(
    private readonly limitsNow: (source: string, destination: string) => UpstreamLimits | undefined,
  ) {}
  /** Requests a gate let through that are still to be told, and whether a loop is telling them. */
  private toWake: GateWaiter[] = [];
  private waking = false;

  /**
   * A call from `up.source` to `up.destination` arrives. Undefined: no limits apply, go on with
   * nothing to give back. Else the ticket (the call holds a slot, or, `queued`, waits for one: then
   * `w` is told when it holds one) or the limit that refused it. A gate counts by the limits of the
   * snapshot applied last, never by `up`'s: a request held by a fault's delay across a snapshot
   * carries the `up` of the one before.
   */
  enter(
    up: ProxyUpstream,
    kind: CallKind,
    w: GateWaiter = NEVER_WAITS,
  ): { ticket: GateTicket; queued: boolean } | Refused | undefined {
    // The common case, a pair with no limits, costs one read.
    if (up.limits === undefined) return undefined;
    const key = keyOf(up.source, up.destination);
    let h = this.held.get(key);
    if (h === undefined) {
      const limits = this.limitsNow(up.source, up.destination);
      if (limits === undefined) return undefined;
      h = { source: up.source, destination: up.destination, gate: new LimitGate<GateWaiter>(limits) };
      this.held.set(key, h);
    }
    const gate = h.gate;
    const entered: Entered = gate.enter(kind, w);
    if (typeof entered === 'object') {
      const count = entered.refused === 'maxPendingRequests' ? gate.pending : gate.active;
      if (gate.idle) this.held.delete(key);
      return { refused: entered.refused, limits: gate.limits, count };
    }
    return { ticket: { key, gate }, queued: entered === 'queued' };
  }

  /** A call that held a slot ended: the requests waiting behind it go on. */
  leave(t: GateTicket): void {
    this.wake(t.gate.leave());
    this.forgetIfIdle(t);
  }

  /**
   * A waiting request gave up. False if it no longer waited: a slot was given to it and it must
   * leave instead.
   */
  cancel(t: GateTicket, w: GateWaiter): boolean {
    const was = t.gate.cancel(w);
    this.forgetIfIdle(t);
    return was;
  }

  /**
   * A new snapshot: each gate takes its pair's limits now (`limitsNow`; none: lifted, and what
   * waits goes on), so requests waiting behind a limit that was raised go on without waiting for
   * the next call, and a later call counts by the new limits.
   */
  refresh(): void {
    for (const h of [...this.held.values()])
      this.wake(h.gate.setLimits(this.limitsNow(h.source, h.destination) ?? {}));
  }

  /** Calls in flight and waiting now, per pair that has any (for the gauges). */
  counts(): Array<{ source: string; destination: string; active: number; pending: number }> {
    return [...this.held.values()].map((h) => ({
      source: h.source,
      destination: h.destination,
      active: h.gate.active,
      pending: h.gate.pending,
    }));
  }

  /**
   * Tells each request let through, in order. Not recursive: a request told may fail at once and
   * free its slot for the next (no instance, a local limit), and telling that one from inside the
   * first, and so on down a long queue, would overflow the stack; the loop that is telling takes
   * them on instead.
   */
  private wake(ws: GateWaiter[]): void {
    if (ws.length === 0) return;
    for (const w of ws) this.toWake.push(w);
    if (this.waking) return;
    this.waking = true;
    try {
      // Bounded: each request is let through once, and at most the waiting ones are.
      for (let i = 0; i < this.toWake.length; i++) {
        try {
          (this.toWake[i] as GateWaiter).admitted();
        } catch {
          // A waiter answers its own failures (and frees its slot as it finishes); the others
          // must still be told.
        }
      }
    } finally {
      this.toWake = [];
      this.waking = false;
    }
  }

  private forgetIfIdle(t: GateTicket): void {
    if (t.gate.idle && this.held.get(t.key)?.gate === t.gate) this.held.delete(t.key);
  }
}

/** Where the limits of calls from `source` are set, for the messages. */
const whereSet = (source: string, limit: string): string =>
  `upstreamConfig limits.${limit} of service-defaults ${source}`;

/** What a gate refused, as `enter` reports it. */
export interface Refused {
  refused: LimitName;
  limits: UpstreamLimits;
  count: number;
}

/** Count a call a gate refused (`limit`: the limit it is counted under) and word its answer. */
export function refuse(
  metrics: ProxyMetrics,
  up: ProxyUpstream,
  r: Refused,
  limit: LimitName = r.refused,
): string {
  metrics.limitRefused.inc({ source: up.source, destination: up.destination, limit });
  return refusalMessage(up, r.refused, r.limits, r.count);
}

/** The answer to a call a gate refused: what was full (`count`: the calls in flight, or waiting for maxPendingRequests), and where that limit is set. */
function refusalMessage(up: ProxyUpstream, limit: LimitName, limits: UpstreamLimits, count: number): string {
  const { source, destination } = up;
  switch (limit) {
    case 'maxConnections':
      return `mesh: ${source} has ${count} connections open to ${destination} already (${whereSet(source, limit)})`;
    case 'maxConcurrentRequests':
      return `mesh: ${source} has ${count} requests in flight to ${destination} already (${whereSet(source, limit)})`;
    case 'maxPendingRequests': {
      const waiting = count === 0 ? 'none may wait for one' : `${count} requests already wait for one`;
      return `mesh: the ${limits.maxConnections} connections from ${source} to ${destination} are all in use and ${waiting} (${whereSet(source, 'maxPendingRequests')}, default ${PENDING_REQUESTS_DEFAULT})`;
    }
  }
}

/** The answer to a request that waited at a gate until its route's timeout. */
export function waitedTooLongMessage(up: ProxyUpstream, limits: UpstreamLimits, waitedMs: number): string {
  return `mesh: none of the ${limits.maxConnections} connections from ${up.source} to ${up.destination} came free within ${waitedMs} ms (${whereSet(up.source, 'maxConnections')})`;
}
