// Failure detection as the simulator checks it: each crashed agent must be seen failed (or left) by
// every live agent, and within a bound. The world reports crashes, restarts and what the agents see;
// this keeps the crashes still waiting to be seen, and how long each took.
import { SafetyViolation } from '../check/raft-safety.js';

export class DetectionWatch {
  /** How long each detected crash took to be seen by every live agent, ms. */
  readonly times: number[] = [];
  /** Crashed agents not yet seen failed by everyone: id → crash time. */
  private readonly pending = new Map<string, number>();

  /** `liveCount(id)`: how many live agents still see `id` alive or suspect. */
  constructor(private readonly liveCount: (id: string) => number) {}

  /** `id` crashed at `nowMs` (not after a graceful leave): its detection is now awaited. */
  crashed(id: string, nowMs: number): void {
    this.pending.set(id, nowMs);
  }

  /** `id` is no longer awaited (it left gracefully; one that comes back is dropped by checkBound). */
  forget(id: string): void {
    this.pending.delete(id);
  }

  /** Whether every live agent now sees `id` gone; if so its detection time is taken. */
  check(id: string, nowMs: number): void {
    const since = this.pending.get(id);
    if (since === undefined || this.liveCount(id) > 0) return;
    this.pending.delete(id);
    this.times.push(nowMs - since);
  }

  /**
   * A crashed agent that stayed down longer than `boundMs` must be seen failed by all (not checked
   * while the network is partitioned). One that is up again is no longer awaited.
   */
  checkBound(nowMs: number, boundMs: number, partitioned: boolean, isUp: (id: string) => boolean): void {
    for (const [id, since] of this.pending) {
      if (isUp(id)) {
        this.pending.delete(id);
        continue;
      }
      if (nowMs - since > boundMs && !partitioned) {
        throw new SafetyViolation(
          'membership detection',
          `${id} crashed at ${since.toFixed(0)} ms and ${this.liveCount(id)} live agents still see it alive or suspect ${Math.round((nowMs - since) / 1000)} s later`,
        );
      }
    }
  }
}
