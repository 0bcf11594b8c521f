// Remembered deletions, so a blocking query on a deleted key or prefix learns that something
// changed (the deleted record itself is gone). Bounded: past `max`, the oldest tombstone is
// forgotten and its index folds into `floor`, which every index query then includes, so a query
// can wake spuriously after a forget but never misses a change.
//
// Forgetting happens on apply, in log order, so it is the same on every agent and survives a
// snapshot: reads are identical however the state was reached.
import { SortedKeys } from './sorted-keys.js';

export class Tombstones {
  /** Key → delete index. Insertion order is deletion order: apply indices only grow. */
  private readonly byKey = new Map<string, number>();
  /** The same keys in order, for prefix queries (KV only). */
  private readonly sorted: SortedKeys | undefined;
  private floor = 0;

  constructor(
    private readonly max: number,
    prefixQueries: boolean,
  ) {
    if (!Number.isSafeInteger(max) || max < 0) throw new Error(`Tombstones: bad bound ${max}`);
    this.sorted = prefixQueries ? new SortedKeys() : undefined;
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

  /** Record a deletion of a live key (so not already a tombstone: asserted). */
  add(key: string, index: number): void {
    if (this.byKey.has(key)) throw new Error(`Tombstones: ${JSON.stringify(key)} deleted twice`);
    this.byKey.set(key, index);
    this.sorted?.insert(key);
    // At most one over the bound per add, so this loop runs once.
    while (this.byKey.size > this.max) {
      const [oldest, at] = this.byKey.entries().next().value as [string, number];
      this.byKey.delete(oldest);
      this.sorted?.remove(oldest);
      this.floor = Math.max(this.floor, at);
    }
  }

  /** Forget a deletion because the key exists again (its new modifyIndex is higher). */
  remove(key: string): void {
    if (this.byKey.delete(key)) this.sorted?.remove(key);
  }

  /** Highest delete index among tombstones under `prefix` (0 if none); excludes the floor. */
  maxUnder(prefix: string): number {
    if (this.sorted === undefined) throw new Error('Tombstones: no prefix index');
    let max = 0;
    this.sorted.forEachUnder(prefix, (k) => {
      max = Math.max(max, this.byKey.get(k) as number);
    });
    return max;
  }

  /** Tombstones in deletion order, for snapshots. */
  entries(): [string, number][] {
    return [...this.byKey.entries()];
  }

  /** Restore a forgotten-floor from a snapshot (before adding its tombstones). */
  setFloor(index: number): void {
    this.floor = index;
  }

  checkInvariants(): void {
    if (this.byKey.size > this.max) throw new Error(`Tombstones: ${this.byKey.size} over bound ${this.max}`);
    let prev = 0;
    for (const [k, i] of this.byKey) {
      if (i < prev) throw new Error(`Tombstones: ${JSON.stringify(k)} out of deletion order`);
      prev = i;
    }
    if (this.sorted) {
      this.sorted.checkInvariants();
      if (this.sorted.size !== this.byKey.size) throw new Error('Tombstones: prefix index out of step');
    }
  }
}
