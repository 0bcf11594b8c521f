// Remembered deletions, so a blocking query on a deleted key or prefix learns that something
// changed (the deleted record itself is gone). Bounded: past `max`, the oldest tombstone is
// forgotten and its index folds into `floor`, which every index query then includes, so a query
// can wake spuriously after a forget but never misses a change.
//
// Forgetting happens on apply, in log order, so it is the same on every agent and survives a
// snapshot: reads are identical however the state was reached.
import { SortedIndex } from './sorted-index.js';

export class Tombstones {
  /** Key → delete index. */
  private readonly byKey = new Map<string, number>();
  /**
   * Deletions in order (apply indices only grow), for forgetting the oldest in O(1). Entries whose
   * key was re-created, or deleted again later, are stale: skipped, and dropped by compaction.
   */
  private queue: { key: string; index: number }[] = [];
  private head = 0;
  /** The same tombstones in key order, for prefix queries (KV only). */
  private sorted: SortedIndex | undefined;
  private floor = 0;

  constructor(
    private readonly max: number,
    prefixQueries: boolean,
  ) {
    if (!Number.isSafeInteger(max) || max < 0) throw new Error(`Tombstones: bad bound ${max}`);
    this.sorted = prefixQueries ? new SortedIndex() : undefined;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Highest delete index forgotten so far. */
  get floorIndex(): number {
    return this.floor;
  }

  get(key: string): number | undefined {
    return this.byKey.get(key);
  }

  private live(e: { key: string; index: number }): boolean {
    return this.byKey.get(e.key) === e.index;
  }

  /** Record a deletion of a live key (so not already a tombstone: asserted). */
  add(key: string, index: number): void {
    if (this.byKey.has(key)) throw new Error(`Tombstones: ${JSON.stringify(key)} deleted twice`);
    this.byKey.set(key, index);
    this.sorted?.set(key, index);
    this.queue.push({ key, index });
    // One over the bound at most, so one live entry is forgotten; the stale ones skipped on the way
    // were each pushed once, so the work is O(1) amortised.
    while (this.byKey.size > this.max) {
      const oldest = this.queue[this.head++];
      if (oldest === undefined) throw new Error('Tombstones: queue ran dry');
      if (!this.live(oldest)) continue;
      this.byKey.delete(oldest.key);
      this.sorted?.remove(oldest.key);
      this.floor = Math.max(this.floor, oldest.index);
    }
    this.compact();
  }

  /**
   * Record deletions of live keys, sorted and distinct, all at one index (a delete-tree). Past the
   * bound this takes the short cut to the state adding them one by one reaches: every older
   * tombstone and the first (n − max) new ones forgotten, the floor at `index`.
   */
  addSorted(keys: readonly string[], index: number): void {
    if (keys.length <= this.max) {
      for (const k of keys) this.add(k, index);
      return;
    }
    const kept = keys.slice(keys.length - this.max);
    this.floor = Math.max(this.floor, index);
    this.byKey.clear();
    for (const k of kept) this.byKey.set(k, index);
    this.queue = kept.map((key) => ({ key, index }));
    this.head = 0;
    if (this.sorted) {
      this.sorted = SortedIndex.fromSorted(
        kept,
        kept.map(() => index),
      );
    }
  }

  /** Forget a deletion because the key exists again (its new modifyIndex is higher). */
  remove(key: string): void {
    if (this.byKey.delete(key)) this.sorted?.remove(key);
    this.compact();
  }

  /** Drop consumed and stale queue entries once they outnumber the live ones (bounds the queue at ~2 × max). */
  private compact(): void {
    const waste = this.queue.length - this.byKey.size;
    if (waste <= this.byKey.size + 1024) return;
    this.queue = this.queue.slice(this.head).filter((e) => this.live(e));
    this.head = 0;
  }

  /** Highest delete index among tombstones under `prefix` (0 if none); excludes the floor. */
  maxUnder(prefix: string): number {
    if (this.sorted === undefined) throw new Error('Tombstones: no prefix index');
    return this.sorted.maxUnder(prefix);
  }

  /** Tombstones in deletion order, for snapshots. */
  entries(): [string, number][] {
    const out: [string, number][] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i] as { key: string; index: number };
      if (this.live(e)) out.push([e.key, e.index]);
    }
    return out;
  }

  /** Restore a forgotten-floor from a snapshot (before adding its tombstones). */
  setFloor(index: number): void {
    this.floor = index;
  }

  checkInvariants(): void {
    if (this.byKey.size > this.max) throw new Error(`Tombstones: ${this.byKey.size} over bound ${this.max}`);
    const listed = this.entries();
    if (listed.length !== this.byKey.size) throw new Error('Tombstones: deletion queue out of step');
    let prev = 0;
    for (const [k, i] of listed) {
      if (i < prev) throw new Error(`Tombstones: ${JSON.stringify(k)} out of deletion order`);
      prev = i;
    }
    if (this.sorted) {
      this.sorted.checkInvariants();
      if (this.sorted.size !== this.byKey.size) throw new Error('Tombstones: prefix index out of step');
    }
  }
}
