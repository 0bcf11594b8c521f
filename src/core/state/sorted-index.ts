// An ordered map from keys to indices with prefix scans, behind KV listing and change tracking.
//
// Keys live in sorted chunks of at most CHUNK_MAX, each with its keys' indices and their maximum:
// - an insert or remove moves at most one chunk's worth of slots (plus, rarely, the chunk list),
//   so a million keys stay cheap to maintain, where one sorted array would shift up to a million
//   slots per new key;
// - "highest index under a prefix" reads whole chunks by their maximum and scans only the two
//   partial chunks at the ends: O(log n + chunks under the prefix + CHUNK_MAX).
// Order is JavaScript string order (UTF-16 code units), which equals byte order for ASCII keys; any
// fixed order works for prefixes, because the keys sharing a prefix are contiguous in it.

/** Largest chunk; a full chunk splits in two halves. */
const CHUNK_MAX = 512;

interface Chunk {
  keys: string[];
  indices: number[];
  /** Highest of `indices`, kept exact (restored machines must answer like the originals). */
  max: number;
}

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

function maxOf(a: readonly number[]): number {
  let m = 0;
  for (const x of a) if (x > m) m = x;
  return m;
}

function chunk(keys: string[], indices: number[]): Chunk {
  return { keys, indices, max: maxOf(indices) };
}

export class SortedIndex {
  private chunks: Chunk[] = [];
  private count = 0;

  /** Build from keys already sorted and distinct (asserted), with their indices. */
  static fromSorted(keys: readonly string[], indices: readonly number[]): SortedIndex {
    if (keys.length !== indices.length) throw new Error('SortedIndex: keys and indices differ in length');
    for (let i = 1; i < keys.length; i++) {
      if (!((keys[i - 1] as string) < (keys[i] as string))) {
        throw new Error(`SortedIndex: keys not sorted and distinct at ${i}`);
      }
    }
    const s = new SortedIndex();
    const half = CHUNK_MAX / 2;
    for (let i = 0; i < keys.length; i += half) {
      s.chunks.push(chunk(keys.slice(i, i + half), indices.slice(i, i + half)));
    }
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
      if (((this.chunks[mid] as Chunk).keys[0] as string) <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Insert a key or change its index. */
  set(key: string, index: number): void {
    if (this.chunks.length === 0) {
      this.chunks.push(chunk([key], [index]));
      this.count = 1;
      return;
    }
    const ci = this.chunkFor(key);
    const c = this.chunks[ci] as Chunk;
    const i = lowerBound(c.keys, key);
    if (c.keys[i] === key) {
      const old = c.indices[i] as number;
      c.indices[i] = index;
      c.max = index >= c.max ? index : old === c.max ? maxOf(c.indices) : c.max;
      return;
    }
    c.keys.splice(i, 0, key);
    c.indices.splice(i, 0, index);
    if (index > c.max) c.max = index;
    this.count++;
    if (c.keys.length > CHUNK_MAX) {
      const tail = chunk(c.keys.splice(CHUNK_MAX / 2), c.indices.splice(CHUNK_MAX / 2));
      c.max = maxOf(c.indices);
      this.chunks.splice(ci + 1, 0, tail);
    }
  }

  /** Remove a key; false if it was not present. */
  remove(key: string): boolean {
    if (this.chunks.length === 0) return false;
    const ci = this.chunkFor(key);
    const c = this.chunks[ci] as Chunk;
    const i = lowerBound(c.keys, key);
    if (c.keys[i] !== key) return false;
    const [old] = c.indices.splice(i, 1);
    c.keys.splice(i, 1);
    this.count--;
    if (c.keys.length === 0) this.chunks.splice(ci, 1);
    else if (old === c.max) c.max = maxOf(c.indices);
    return true;
  }

  /** Remove every key starting with `prefix`; the removed keys, in order. O(log n + removed). */
  removeUnder(prefix: string): string[] {
    const removed: string[] = [];
    const at = this.start(prefix);
    if (at === undefined) return removed;
    let [ci, i] = at;
    while (ci < this.chunks.length) {
      const c = this.chunks[ci] as Chunk;
      const length = c.keys.length;
      if (i >= length) {
        ci++;
        i = 0;
        continue;
      }
      let j = i;
      while (j < length && (c.keys[j] as string).startsWith(prefix)) j++;
      if (j === i) break;
      for (let k = i; k < j; k++) removed.push(c.keys[k] as string);
      c.keys.splice(i, j - i);
      c.indices.splice(i, j - i);
      this.count -= j - i;
      if (c.keys.length === 0) {
        this.chunks.splice(ci, 1);
        i = 0;
        continue;
      }
      c.max = maxOf(c.indices);
      if (j < length) break;
      ci++;
      i = 0;
    }
    return removed;
  }

  /** Where the first key ≥ prefix sits: [chunk, position], or undefined when empty. */
  private start(prefix: string): [number, number] | undefined {
    if (this.chunks.length === 0) return undefined;
    const ci = this.chunkFor(prefix);
    return [ci, lowerBound((this.chunks[ci] as Chunk).keys, prefix)];
  }

  /** Keys starting with `prefix`, in order, at most `limit`. */
  range(prefix: string, limit = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    const at = this.start(prefix);
    if (at === undefined || limit <= 0) return out;
    let [ci, i] = at;
    for (; ci < this.chunks.length; ci++, i = 0) {
      const keys = (this.chunks[ci] as Chunk).keys;
      for (; i < keys.length; i++) {
        const k = keys[i] as string;
        if (!k.startsWith(prefix)) return out;
        out.push(k);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /** Highest index among keys starting with `prefix`; 0 if there are none. */
  maxUnder(prefix: string): number {
    const at = this.start(prefix);
    if (at === undefined) return 0;
    let [ci, i] = at;
    let max = 0;
    for (; ci < this.chunks.length; ci++, i = 0) {
      const c = this.chunks[ci] as Chunk;
      // A chunk entered at its start (first key ≥ prefix) whose last key is under the prefix lies
      // wholly under it (keys under a prefix are contiguous): its maximum answers for it.
      if (i === 0 && (c.keys[c.keys.length - 1] as string).startsWith(prefix)) {
        if (c.max > max) max = c.max;
        continue;
      }
      for (; i < c.keys.length; i++) {
        if (!(c.keys[i] as string).startsWith(prefix)) return max;
        const x = c.indices[i] as number;
        if (x > max) max = x;
      }
    }
    return max;
  }

  /** All keys with their indices, in order (snapshots). */
  entries(): [string, number][] {
    const out: [string, number][] = [];
    for (const c of this.chunks)
      for (let i = 0; i < c.keys.length; i++) out.push([c.keys[i]!, c.indices[i]!]);
    return out;
  }

  /** Check order, chunk sizes, maxima and the count (tests, simulator). */
  checkInvariants(): void {
    let n = 0;
    let prev: string | undefined;
    for (const c of this.chunks) {
      if (c.keys.length === 0 || c.keys.length > CHUNK_MAX || c.keys.length !== c.indices.length) {
        throw new Error(`SortedIndex: chunk of ${c.keys.length} keys, ${c.indices.length} indices`);
      }
      if (c.max !== maxOf(c.indices)) throw new Error(`SortedIndex: chunk max ${c.max} is stale`);
      for (const k of c.keys) {
        if (prev !== undefined && !(prev < k)) throw new Error('SortedIndex: keys out of order');
        prev = k;
        n++;
      }
    }
    if (n !== this.count) throw new Error(`SortedIndex: count ${this.count}, holds ${n}`);
  }
}
