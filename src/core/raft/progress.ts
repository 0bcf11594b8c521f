// The leader's view of one follower (etcd-io/raft tracker/progress.go, tracker/inflights.go).
//
// probe:     we do not know where the follower's log matches ours; send one append at a time
//            and wait for the answer (or a heartbeat response) before sending the next.
// replicate: the follower is in sync; send appends optimistically (next advances as we send),
//            up to `inflightMax` unacknowledged messages (pipelining).
// snapshot:  the follower needs a snapshot; nothing else is sent until it is acknowledged (or
//            the snapshot times out and we fall back to probing).
import type { PeerProgress } from './types.js';

/** A ring of the last indexes of unacknowledged append messages, oldest first. */
export class Inflights {
  private readonly buf: number[] = [];

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new Error(`raft: inflightMax must be ≥ 1, got ${max}`);
  }

  get count(): number {
    return this.buf.length;
  }

  full(): boolean {
    return this.buf.length >= this.max;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new Error('raft: inflights overflow (sendAppend must check isPaused first)');
    const prev = this.buf[this.buf.length - 1];
    if (prev !== undefined && lastIndex < prev) {
      throw new Error(`raft: inflight indexes must not decrease (${lastIndex} after ${prev})`);
    }
    this.buf.push(lastIndex);
  }

  /** Forget every message whose last index is ≤ `index` (acknowledged by a response for `index`). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.buf.length && (this.buf[n] as number) <= index) n++;
    if (n > 0) this.buf.splice(0, n);
  }

  /** Forget the oldest message (a heartbeat response shows the link works; etcd's FreeFirstOne). */
  freeFirst(): void {
    this.buf.shift();
  }

  reset(): void {
    this.buf.length = 0;
  }
}

export type ProgressState = PeerProgress['state'];

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot in flight while in snapshot state. */
  pendingSnapshot = 0;
  /** Ticks since the snapshot was sent (snapshot state); after a timeout we fall back to probe. */
  snapshotElapsedTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Probe state: an append is outstanding, wait for its answer before sending another. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, inflightMax: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(inflightMax);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsedTicks = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Leaving snapshot state: the follower has (or will have) at least the snapshot, so probe after it.
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  /** A successful append response for `n`. Returns whether match advanced. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Replicate state: we sent entries up to `n`; assume they will arrive. */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * A rejection of the append whose previous index was `rejected`; `hint` is an index at or
   * below which the follower's log may match ours. Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      // Stale: we already know the follower has entries up to match.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe (or snapshot): only the answer to the append we are waiting for counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  view(): PeerProgress {
    return { match: this.match, next: this.next, state: this.state, recentActive: this.recentActive };
  }
}
