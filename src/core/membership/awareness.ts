// Lifeguard local health ("awareness"). A node that misses its own deadlines (no nacks from
// relays, having to refute suspicions) is probably the slow one; it then probes less often and
// waits longer, so it does not accuse healthy peers. Score 0 = healthy.

export class Awareness {
  private score = 0;

  /** @param max awarenessMaxMultiplier: the score stays in 0..max−1. */
  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new Error(`awareness: max must be a positive integer, got ${max}`);
    }
  }

  /** Add `delta` (may be negative), clamped to 0..max−1. */
  apply(delta: number): void {
    if (!Number.isInteger(delta)) throw new Error(`awareness: delta must be an integer, got ${delta}`);
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  health(): number {
    return this.score;
  }

  /** Scale a timeout by the current health: ms × (score + 1). */
  scaleMs(ms: number): number {
    return ms * (this.score + 1);
  }
}
