// The log since the last snapshot, held in memory (etcd-io/raft log.go + log_unstable.go,
// without a separate Storage: the shell persists what Ready hands out and restores it at start).
//
// Indexes, all monotonic except where a conflicting suffix is truncated:
//   snapIndex ≤ applied ≤ applying ≤ committed ≤ lastIndex
//   snapIndex ≤ stabled ≤ handedOut ≤ lastIndex
// `stabled` is the last index the shell has confirmed persisted (advance), `handedOut` the last
// index given to the shell in a Ready for persistence. `applying` is the last committed index
// handed out for application, `applied` the last one the shell confirmed applied.
import type { Entry, SnapshotMeta } from './types.js';

/** Bytes an entry counts for against appendBytesMax: its payload plus a fixed header estimate. */
export function entrySizeBytes(e: Entry): number {
  return e.data.length + 24;
}

export class RaftLog {
  snapIndex: number;
  snapTerm: number;
  /** ents[i].index === snapIndex + 1 + i */
  private ents: Entry[];
  committed: number;
  applying: number;
  applied: number;
  stabled: number;
  handedOut: number;

  constructor(snap: { index: number; term: number }, entries: Entry[], committed: number, applied: number) {
    this.snapIndex = snap.index;
    this.snapTerm = snap.term;
    this.ents = [];
    let prevIndex = snap.index;
    let prevTerm = snap.term;
    for (const e of entries) {
      if (e.index !== prevIndex + 1) {
        throw new Error(`raft: restored entries not contiguous: ${e.index} after ${prevIndex}`);
      }
      if (e.term < prevTerm)
        throw new Error(`raft: restored entry ${e.index} has term ${e.term} < ${prevTerm}`);
      prevIndex = e.index;
      prevTerm = e.term;
      this.ents.push(e);
    }
    const last = this.lastIndex();
    // The persisted commit can lag the persisted entries; it can never lead them.
    this.committed = Math.max(committed, snap.index);
    if (this.committed > last) {
      throw new Error(`raft: restored commit ${this.committed} beyond the last persisted index ${last}`);
    }
    if (applied < snap.index || applied > this.committed) {
      throw new Error(
        `raft: restored applied ${applied} outside [snapshot ${snap.index}, commit ${this.committed}]`,
      );
    }
    this.applied = applied;
    this.applying = applied;
    this.stabled = last;
    this.handedOut = last;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastIndex(): number {
    return this.snapIndex + this.ents.length;
  }

  lastTerm(): number {
    const e = this.ents[this.ents.length - 1];
    return e === undefined ? this.snapTerm : e.term;
  }

  /** Term of the entry at `i`, or undefined when compacted away or beyond the end. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return undefined;
    return (this.ents[i - this.snapIndex - 1] as Entry).term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapIndex) return undefined;
    return this.ents[i - this.snapIndex - 1];
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry of `ents` that is new or conflicts with ours; 0 when all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (etcd's findConflictByTerm): every entry
   * above it has a larger term than the leader's entry at `index`, so cannot match.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.snapIndex) {
      if ((this.term(i) as number) <= term) return i;
      i--;
    }
    return this.snapIndex;
  }

  /**
   * Append `ents`, truncating a conflicting suffix first. Callers ensure log matching (the entry
   * before ents[0] matches the leader's); here we assert contiguity and that no committed entry
   * is dropped.
   */
  append(ents: readonly Entry[]): void {
    const first = ents[0];
    if (first === undefined) return;
    if (first.index <= this.committed) {
      throw new Error(
        `raft: refusing to overwrite committed entry ${first.index} (commit ${this.committed})`,
      );
    }
    if (first.index > this.lastIndex() + 1) {
      throw new Error(`raft: log gap: appending ${first.index} after last index ${this.lastIndex()}`);
    }
    const prevTerm = this.term(first.index - 1);
    if (prevTerm === undefined || first.term < prevTerm) {
      throw new Error(`raft: appending entry ${first.index}@${first.term} after term ${prevTerm}`);
    }
    for (let k = 1; k < ents.length; k++) {
      const a = ents[k - 1] as Entry;
      const b = ents[k] as Entry;
      if (b.index !== a.index + 1 || b.term < a.term) {
        throw new Error(`raft: entries to append not contiguous at ${b.index}@${b.term}`);
      }
    }
    this.ents.length = first.index - this.snapIndex - 1;
    for (const e of ents) this.ents.push(e);
    // Anything at or after the truncation point must be handed out (and persisted) again.
    this.stabled = Math.min(this.stabled, first.index - 1);
    this.handedOut = Math.min(this.handedOut, first.index - 1);
  }

  /** Entries in [lo, hi] (inclusive), at least one if any, capped by bytes and count. */
  slice(lo: number, hi: number, bytesMax = Infinity, countMax = Infinity): Entry[] {
    if (lo <= this.snapIndex)
      throw new Error(`raft: slice from ${lo} is compacted (snapshot ${this.snapIndex})`);
    const out: Entry[] = [];
    let bytes = 0;
    const top = Math.min(hi, this.lastIndex());
    for (let i = lo; i <= top && out.length < countMax; i++) {
      const e = this.ents[i - this.snapIndex - 1] as Entry;
      bytes += entrySizeBytes(e);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /** Every entry after the snapshot (for re-deriving the configuration). */
  all(): readonly Entry[] {
    return this.ents;
  }

  commitTo(i: number): void {
    if (i <= this.committed) return;
    if (i > this.lastIndex()) {
      throw new Error(
        `raft: commit ${i} beyond last index ${this.lastIndex()} (log corrupted, truncated or lost?)`,
      );
    }
    this.committed = i;
  }

  hasNextUnstable(): boolean {
    return this.handedOut < this.lastIndex();
  }

  /** Entries not yet handed out for persistence; marks them handed out. */
  takeUnstable(): Entry[] {
    if (!this.hasNextUnstable()) return [];
    const out = this.ents.slice(this.handedOut - this.snapIndex);
    this.handedOut = this.lastIndex();
    return out;
  }

  /** Committed entries are applied only once persisted (or being persisted by the same Ready). */
  private committedLimit(): number {
    return Math.min(this.committed, this.handedOut);
  }

  hasNextCommitted(): boolean {
    return this.applying < this.committedLimit();
  }

  takeCommitted(): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const hi = this.committedLimit();
    const out = this.ents.slice(this.applying - this.snapIndex, hi - this.snapIndex);
    this.applying = hi;
    return out;
  }

  /** The shell persisted entries up to `i` (term `t`); ignore if they were since truncated. */
  stableTo(i: number, t: number): void {
    if (this.matchTerm(i, t) && i > this.stabled) this.stabled = i;
  }

  appliedTo(i: number): void {
    if (i < this.applied || i > this.applying) {
      throw new Error(`raft: applied ${i} outside [${this.applied}, ${this.applying}]`);
    }
    this.applied = i;
  }

  /** The shell installed the snapshot handed out by restore(). */
  appliedSnapshot(i: number): void {
    if (i > this.applied) this.applied = i;
  }

  /** Drop entries ≤ index (the shell snapshotted the state machine at `index`). */
  compact(index: number): void {
    const t = this.term(index);
    if (t === undefined) throw new Error(`raft: cannot compact to ${index}: not in the log`);
    this.ents = this.ents.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = t;
  }

  /** Replace the whole log with a snapshot received from the leader. */
  restore(meta: SnapshotMeta): void {
    if (meta.index <= this.committed) {
      throw new Error(`raft: snapshot ${meta.index} not beyond commit ${this.committed}`);
    }
    this.ents = [];
    this.snapIndex = meta.index;
    this.snapTerm = meta.term;
    this.committed = meta.index;
    this.applying = meta.index;
    this.stabled = meta.index;
    this.handedOut = meta.index;
    // `applied` moves to meta.index when the shell confirms it installed the snapshot (advance).
  }
}
