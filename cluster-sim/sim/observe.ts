// What the simulator measures while it runs, kept as counters so checking stays O(1) per event at
// 1,000 agents: how many live observers see each member alive (join convergence, "every live node
// seen alive by all"), how many still see a crashed member alive or suspect (detection time), false
// failure declarations, and how long a committed entry takes to be applied on every agent.
import type { MemberEvent, MemberStatus } from '../../src/core/membership/types.js';

export interface Distribution {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] as number };
}

const isLive = (s: MemberStatus | undefined): boolean => s === 'alive' || s === 'suspect';

/** Membership views, counted per subject over observers that are up. */
export class MembershipViews {
  /** Up observers (other than the subject) whose view of it is exactly alive. */
  private readonly alive = new Map<string, number>();
  /** Up observers whose view of it is alive or suspect. */
  private readonly live = new Map<string, number>();
  aliveTotal = 0;

  aliveCount(subject: string): number {
    return this.alive.get(subject) ?? 0;
  }

  liveCount(subject: string): number {
    return this.live.get(subject) ?? 0;
  }

  /** One observer's view of `subject` moved from `prev` to `cur` (undefined: not known). */
  change(subject: string, prev: MemberStatus | undefined, cur: MemberStatus | undefined): void {
    if (prev === cur) return;
    const da = Number(cur === 'alive') - Number(prev === 'alive');
    const dl = Number(isLive(cur)) - Number(isLive(prev));
    if (da !== 0) {
      this.alive.set(subject, this.aliveCount(subject) + da);
      this.aliveTotal += da;
    }
    if (dl !== 0) this.live.set(subject, this.liveCount(subject) + dl);
  }

  /** An observer's events (self excluded). */
  apply(observer: string, events: readonly MemberEvent[]): void {
    for (const e of events) {
      if (e.member.id === observer) continue;
      this.change(e.member.id, e.previous, e.member.status);
    }
  }
}

/** Commit → applied on every agent, for each committed index the leader applied. */
export class Propagation {
  private readonly records: Array<{ index: number; atMs: number; count: number }> = [];
  private first = 0;
  private readonly cursor = new Map<string, number>();
  readonly doneMs: number[] = [];
  /** Bound on open records: older ones are dropped (counted) rather than kept forever. */
  private static readonly OPEN_MAX = 50_000;
  dropped = 0;
  private disturbedTo = 0;

  /** The leader applied `index` at `atMs` (first time only). */
  committed(index: number, atMs: number): void {
    const last = this.records[this.records.length - 1];
    if (last !== undefined && index <= last.index) return;
    this.records.push({ index, atMs, count: 0 });
    if (this.records.length - this.first > Propagation.OPEN_MAX) {
      this.first++;
      this.dropped++;
    }
  }

  /** An agent crashed or restarted: entries committed so far are not measured (a restarted agent
   * replays them long after their commit, which says nothing about propagation). */
  disturb(): void {
    this.disturbedTo = this.records[this.records.length - 1]?.index ?? this.disturbedTo;
  }

  /** Agent `id` has applied up to `index`; `upCount` agents are up now. */
  applied(id: string, index: number, upCount: number, nowMs: number): void {
    let c = Math.max(this.cursor.get(id) ?? 0, this.first);
    while (c < this.records.length && (this.records[c] as { index: number }).index <= index) {
      const r = this.records[c] as { index: number; atMs: number; count: number };
      r.count++;
      if (r.count === upCount && r.index > this.disturbedTo) this.doneMs.push(nowMs - r.atMs);
      c++;
    }
    this.cursor.set(id, c);
  }
}
