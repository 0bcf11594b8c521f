// Fault injection at the caller's agent (a service-router route's `fault`): the draw per request,
// its count in the metrics, and the bound on requests held by a delay at once. The decision itself
// is the pure core's (core/routing/fault.ts).

import { type CompiledFault, decideFault, type FaultDecision, NO_FAULT } from '../core/routing/fault.js';
import type { ProxyMetrics } from './metrics.js';
import type { ProxyUpstream } from './types.js';

export const FAULT_SHELL_LIMITS = Object.freeze({
  /**
   * Requests held by a fault's delay at once, per agent. Each holds its caller's connection and a
   * timer; past this a request that drew a delay goes on at once (counted as skipped), so a delay
   * on a busy route cannot pile up connections without end (Envoy's max_active_faults).
   */
  delaysActiveMax: 1_000,
});

/** The abort's answer on a route, and where it came from (for the caller's error text). */
export function faultMessage(destination: string, routeIndex: number): string {
  return `mesh: fault injected (service-router ${destination} routes[${routeIndex}].fault.abort)`;
}

export class Faults {
  private delaysActive = 0;

  constructor(private readonly draw: () => number) {}

  /** Requests held by a delay now. */
  get active(): number {
    return this.delaysActive;
  }

  /** The fault one request of `up` meets on a route with `f`; a delay (or one skipped) is counted in `metrics`. */
  decide(f: CompiledFault, up: ProxyUpstream, metrics: ProxyMetrics): FaultDecision {
    const d = decideFault(f, this.draw(), this.draw());
    if (d === NO_FAULT) return d;
    const labels = { source: up.source, destination: up.destination };
    let out = d;
    if (d.delayMs > 0 && this.delaysActive >= FAULT_SHELL_LIMITS.delaysActiveMax) {
      metrics.faults.inc({ ...labels, fault: 'delay_skipped' });
      out = d.abort ? { delayMs: 0, abort: true } : NO_FAULT;
    } else if (d.delayMs > 0) metrics.faults.inc({ ...labels, fault: 'delay' });
    return out;
  }

  /** An abort answered (counted then, not when drawn: a caller may leave during the delay before it). */
  aborted(up: ProxyUpstream, metrics: ProxyMetrics): void {
    metrics.faults.inc({ source: up.source, destination: up.destination, fault: 'abort' });
  }

  /** A delay began: paired with `released` when it ends, whichever way. */
  held(): void {
    this.delaysActive++;
  }

  released(): void {
    if (this.delaysActive > 0) this.delaysActive--;
  }
}
