// Lifeguard suspicion timer. A suspicion starts long (max) and shrinks toward min as distinct
// nodes confirm it, so a single sick prober cannot get a healthy node declared failed quickly,
// while a node that many peers cannot reach is failed fast. The deadline is always measured from
// the start of the suspicion, as in memberlist's suspicion.go.
import { suspicionTimeoutMinMs, suspicionTimeoutMs } from './config.js';
import type { NodeId } from './types.js';

export interface SuspicionParams {
  suspicionMult: number;
  suspicionMaxTimeoutMult: number;
  probeIntervalMs: number;
}

export class Suspicion {
  readonly minMs: number;
  readonly maxMs: number;
  /** Confirmations expected before the timeout reaches min. */
  readonly expected: number;
  private readonly confirmedBy = new Set<NodeId>();

  /**
   * @param from the node that raised the suspicion (its later messages do not count as confirmations)
   * @param n live members (not failed/left), including self
   */
  constructor(
    readonly from: NodeId,
    readonly startMs: number,
    n: number,
    params: SuspicionParams,
  ) {
    this.minMs = suspicionTimeoutMinMs(params.suspicionMult, n, params.probeIntervalMs);
    this.maxMs = params.suspicionMaxTimeoutMult * this.minMs;
    // Confirmations can only come from nodes other than the suspect and the accuser.
    const k = params.suspicionMult - 2;
    this.expected = n - 2 < k ? 0 : Math.max(0, k);
    if (this.maxMs < this.minMs) throw new Error('suspicion: max timeout below min timeout');
  }

  /** Record a confirmation; true when it was new and counted (it shrank or could shrink the timer). */
  confirm(from: NodeId): boolean {
    if (this.confirmedBy.size >= this.expected) return false;
    if (from === this.from || this.confirmedBy.has(from)) return false;
    this.confirmedBy.add(from);
    return true;
  }

  confirmations(): number {
    return this.confirmedBy.size;
  }

  /** When the suspected member is to be declared failed. */
  deadlineMs(): number {
    return this.startMs + suspicionTimeoutMs(this.minMs, this.maxMs, this.confirmedBy.size, this.expected);
  }
}
