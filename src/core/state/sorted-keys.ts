// An ordered set of strings with prefix scans, for KV listing and change tracking.
//
// Keys live in sorted chunks of at most CHUNK_MAX: an insert or remove moves at most one chunk's
// worth of pointers (plus, rarely, the chunk list), so a million keys stay cheap to maintain, unlike
// one big sorted array where every insert of a new key shifts up to a million slots.
// Order is JavaScript string order (UTF-16 code units), which equals byte order for ASCII keys; any
// fixed order works for prefixes, because the keys sharing a prefix are contiguous in it.

/** Largest chunk; a full chunk splits in two halves. */
const CHUNK_MAX = 512;

function lowerBound(a: readonly string[], key: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SortedKeys {
  private chunks: string[][] = [];
  private count = 0;

  /** Build from keys already sorted and distinct (asserted). */
  static fromSorted(keys: readonly string[]): SortedKeys {
    const s = new SortedKeys();
    for (let i = 1; i < keys.length; i++) {
      if (!((keys[i - 1] as string) < (keys[i] as string))) {
        throw new Error(`SortedKeys: keys not sorted and distinct at ${i}`);
      }
    }
    const half = CHUNK_MAX / 2;
    for (let i = 0; i < keys.length; i += half) s.chunks.push(keys.slice(i, i + half));
    s.count = keys.length;
    return s;
  }

  get size(): number {
    return this.count;
  }

  /** The chunk that holds, or would hold, `key`: the last whose first key is ≤ key (0 if none). */
  private chunkFor(key: string): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (((this.chunks[mid] as string[])[0] as string) <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Add a key that is not present (asserted: callers track membership in their maps). */
  insert(key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.count = 1;
      return;
    }
    const ci = this.chunkFor(key);
    const c = this.chunks[ci] as string[];
    const i = lowerBound(c, key);
    if (c[i] === key) throw new Error(`SortedKeys: duplicate key ${JSON.stringify(key)}`);
    c.splice(i, 0, key);
    this.count++;
    if (c.length > CHUNK_MAX) this.chunks.splice(ci + 1, 0, c.splice(CHUNK_MAX / 2));
  }

  /** Remove a key; false if it was not present. */
  remove(key: string): boolean {
    if (this.chunks.length === 0) return false;
    const ci = this.chunkFor(key);
    const c = this.chunks[ci] as string[];
    const i = lowerBound(c, key);
    if (c[i] !== key) return false;
    c.splice(i, 1);
    this.count--;
    if (c.length === 0) this.chunks.splice(ci, 1);
    return true;
  }

  /** Keys starting with `prefix`, in order, at most `limit`. */
  range(prefix: string, limit = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    if (this.chunks.length === 0 || limit <= 0) return out;
    let ci = this.chunkFor(prefix);
    let i = lowerBound(this.chunks[ci] as string[], prefix);
    for (; ci < this.chunks.length; ci++, i = 0) {
      const c = this.chunks[ci] as string[];
      for (; i < c.length; i++) {
        const k = c[i] as string;
        if (!k.startsWith(prefix)) return out;
        out.push(k);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /** Visit keys starting with `prefix` in order (no array built). */
  forEachUnder(prefix: string, visit: (key: string) => void): void {
    if (this.chunks.length === 0) return;
    let ci = this.chunkFor(prefix);
    let i = lowerBound(this.chunks[ci] as string[], prefix);
    for (; ci < this.chunks.length; ci++, i = 0) {
      const c = this.chunks[ci] as string[];
      for (; i < c.length; i++) {
        const k = c[i] as string;
        if (!k.startsWith(prefix)) return;
        visit(k);
      }
    }
  }

  /** Check chunk order and the count (tests, simulator). */
  checkInvariants(): void {
    let n = 0;
    let prev: string | undefined;
    for (const c of this.chunks) {
      if (c.length === 0 || c.length > CHUNK_MAX) throw new Error(`SortedKeys: chunk of ${c.length} keys`);
      for (const k of c) {
        if (prev !== undefined && !(prev < k)) throw new Error('SortedKeys: keys out of order');
        prev = k;
        n++;
      }
    }
    if (n !== this.count) throw new Error(`SortedKeys: count ${this.count}, holds ${n}`);
  }
}
