// ReadIndex (Raft thesis §6.4, etcd-io/raft read_only.go): the leader records its commit index
// for a read, confirms it is still leader with a round of heartbeats carrying the read's ctx,
// and once a quorum of voters acknowledges, the read may be served once `index` is applied.
import type { NodeId, ReadState } from './types.js';

interface Pending {
  index: number;
  acks: Set<NodeId>;
}

/** Bound on reads waiting for a quorum; beyond it the leader refuses with 'overloaded'. */
export const PENDING_READS_MAX = 4096;

export class ReadOnly {
  private readonly pending = new Map<string, Pending>();
  /** ctxs in arrival order; an ack for one confirms all before it. */
  private queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  has(ctx: string): boolean {
    return this.pending.has(ctx);
  }

  add(index: number, ctx: string, self: NodeId): void {
    if (this.pending.has(ctx)) return;
    this.pending.set(ctx, { index, acks: new Set([self]) });
    this.queue.push(ctx);
  }

  /** Record an ack; returns the ackers of that ctx, or undefined if unknown. */
  recvAck(from: NodeId, ctx: string): ReadonlySet<NodeId> | undefined {
    const p = this.pending.get(ctx);
    if (p === undefined) return undefined;
    p.acks.add(from);
    return p.acks;
  }

  /** Release `ctx` and every read queued before it. */
  advance(ctx: string): ReadState[] {
    const at = this.queue.indexOf(ctx);
    if (at < 0) return [];
    const out: ReadState[] = [];
    for (const c of this.queue.slice(0, at + 1)) {
      const p = this.pending.get(c) as Pending;
      out.push({ ctx: c, index: p.index });
      this.pending.delete(c);
    }
    this.queue = this.queue.slice(at + 1);
    return out;
  }

  /** The newest pending ctx, carried by every heartbeat so one round can confirm all reads. */
  lastCtx(): string {
    return this.queue[this.queue.length - 1] ?? '';
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
