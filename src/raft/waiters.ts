// Callers waiting on a Raft outcome: a proposal until its entry is applied, a linearizable read
// until a quorum confirms its ReadIndex, and "until index N is applied". Each kind is bounded in
// count and in time, and stopping answers every one of them.
import { MeshError } from '../api/types.js';
import type { ApplyResult } from '../core/state/state-machine.js';

/** Bounds on what callers can queue. */
export const WAITERS_LIMITS = {
  proposalsMax: 20_000,
  readsMax: 10_000,
  appliedMax: 20_000,
  requestsMax: 20_000,
} as const;

interface Proposal {
  term: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Read {
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface AppliedWaiter {
  index: number;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
}

export class RaftWaiters {
  private readonly proposals = new Map<number, Proposal>();
  private readonly reads = new Map<string, Read>();
  private readonly applied = new Set<AppliedWaiter>();
  /** Writes this agent took from clients, by request id, until this agent applies them. */
  private readonly requests = new Map<string, (r: ApplyResult) => void>();

  /** `timeoutMs`: how long a proposal or read may wait before its caller gets 'unavailable'. */
  constructor(private readonly timeoutMs: number) {}

  /** Refuse a new proposal when too many wait already (before proposing it to the core). */
  checkProposalRoom(): MeshError | undefined {
    if (this.proposals.size < WAITERS_LIMITS.proposalsMax) return undefined;
    return new MeshError('unavailable', 'too many writes in flight; retry');
  }

  checkReadRoom(): MeshError | undefined {
    if (this.reads.size < WAITERS_LIMITS.readsMax) return undefined;
    return new MeshError('unavailable', 'too many consistent reads in flight; retry');
  }

  /** Wait for the entry proposed at `index` in `term` to be applied. */
  proposal(index: number, term: number): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.proposals.delete(index);
        reject(
          new MeshError(
            'unavailable',
            `write not committed within ${this.timeoutMs} ms (it may still be applied)`,
          ),
        );
      }, this.timeoutMs);
      this.proposals.set(index, { term, resolve, reject, timer });
    });
  }

  /** The entry at `index` (of `term`) was applied with `result`. */
  proposalApplied(index: number, term: number, result: ApplyResult): void {
    const w = this.proposals.get(index);
    if (!w) return;
    this.proposals.delete(index);
    clearTimeout(w.timer);
    // Another entry took the index: our proposal was lost with a leadership change.
    if (w.term === term) w.resolve(result);
    else w.reject(new MeshError('unavailable', 'leadership changed before the write committed; retry'));
  }

  /** Wait for the ReadIndex request `ctx` to be confirmed. */
  read(ctx: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        reject(new MeshError('unavailable', 'no quorum confirmed the read in time'));
      }, this.timeoutMs);
      this.reads.set(ctx, { resolve, reject, timer });
    });
  }

  readConfirmed(ctx: string, index: number): void {
    const r = this.reads.get(ctx);
    if (!r) return;
    this.reads.delete(ctx);
    clearTimeout(r.timer);
    r.resolve(index);
  }

  /**
   * Call `applied` with the result when this agent applies an entry carrying request id `rid`
   * (the first copy, or a copy proposed again: both answer the first one's result). Returns the
   * cancel function, or undefined when too many wait already. The caller bounds the wait.
   */
  onRequest(rid: string, applied: (r: ApplyResult) => void): (() => void) | undefined {
    if (this.requests.size >= WAITERS_LIMITS.requestsMax || this.requests.has(rid)) return undefined;
    this.requests.set(rid, applied);
    return () => {
      this.requests.delete(rid);
    };
  }

  /** An entry carrying request id `rid` was applied here with `result`. */
  requestApplied(rid: string, result: ApplyResult): void {
    const w = this.requests.get(rid);
    if (!w) return;
    this.requests.delete(rid);
    w(result);
  }

  /** Resolves true once `appliedIndex()` reaches `index`, false after `timeoutMs` or when full. */
  untilApplied(index: number, timeoutMs: number): Promise<boolean> {
    if (this.applied.size >= WAITERS_LIMITS.appliedMax) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: AppliedWaiter = {
        index,
        resolve,
        timer: setTimeout(() => {
          this.applied.delete(w);
          resolve(false);
        }, timeoutMs),
      };
      this.applied.add(w);
    });
  }

  /** The state machine has applied up to `index`. */
  appliedUpTo(index: number): void {
    for (const w of this.applied) {
      if (w.index > index) continue;
      this.applied.delete(w);
      clearTimeout(w.timer);
      w.resolve(true);
    }
  }

  /** Answer everyone: proposals and reads fail with `err`, index waits resolve false. */
  rejectAll(err: MeshError): void {
    for (const w of this.proposals.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.proposals.clear();
    for (const r of this.reads.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.reads.clear();
    for (const w of this.applied) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.applied.clear();
    // Their writers have their own deadlines; they stop waiting on this agent.
    this.requests.clear();
  }
}
