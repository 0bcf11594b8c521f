// Writes that apply at most once. A write carries a request id (`rid`) chosen by the agent that took
// it from the client. When the leader fails with the write in flight, that agent cannot tell whether
// it was committed, so it proposes it again, with the same id, to the next leader. If the first
// copy was committed after all, the second is a duplicate: every agent recognises it here and
// answers it with the first one's result without applying it again. This is the "client session"
// of the Raft dissertation (§6.3), with the id per write instead of per client, so no session
// needs opening or expiring.
//
// The memory is part of the replicated state (and of snapshots): every agent must reach the same
// verdict on a duplicate, or their states would part. It holds the last `max` ids in apply order;
// a retry comes within seconds of the first copy, so the bound is generous (see STATE_LIMITS).
import type { ApplyResult } from './types.js';

/** A request id: what the shell generates (a UUID), bounded and printable. */
export const RID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export class RecentRequests {
  /** Insertion-ordered: the first key is the oldest. */
  private readonly results = new Map<string, ApplyResult>();

  constructor(private readonly max: number) {
    if (!(Number.isSafeInteger(max) && max >= 1)) throw new Error(`recent requests: bad bound ${max}`);
  }

  get size(): number {
    return this.results.size;
  }

  /** The result the first copy of `rid` got, if it is remembered. */
  get(rid: string): ApplyResult | undefined {
    return this.results.get(rid);
  }

  /** Remember `rid`'s result; forgets the oldest beyond the bound. `rid` must be new. */
  add(rid: string, result: ApplyResult): void {
    if (this.results.has(rid)) throw new Error(`recent requests: ${rid} added twice`);
    this.results.set(rid, result);
    if (this.results.size > this.max) {
      const oldest = this.results.keys().next().value as string;
      this.results.delete(oldest);
    }
  }

  /** Oldest first, as snapshots store them. */
  entries(): { rid: string; result: ApplyResult }[] {
    return [...this.results].map(([rid, result]) => ({ rid, result }));
  }

  /** Results are in apply order (indexes increase) and no later than `applied`. */
  checkInvariants(applied: number): void {
    if (this.results.size > this.max) throw new Error('recent requests: beyond the bound');
    let prev = 0;
    for (const [rid, r] of this.results) {
      if (!RID_PATTERN.test(rid)) throw new Error(`recent requests: bad id ${JSON.stringify(rid)}`);
      if (!(r.index > prev && r.index <= applied)) {
        throw new Error(
          `recent requests: ${rid} at index ${r.index} out of order (after ${prev}, applied ${applied})`,
        );
      }
      prev = r.index;
    }
  }
}
