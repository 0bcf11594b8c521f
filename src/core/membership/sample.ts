// Random picks from a list with a few positions left out, without copying the list: what
// sample() in ../rand.ts does to a filtered copy, in O(k) instead of O(N). The member table keeps
// members of each status in a list, and a relay or push-pull peer is "k alive members other than
// self (and the probe target)"; at 1,000 members filtering a copy on every pick dominated the
// simulator's profile.
import type { Rng } from './types.js';

/**
 * Up to `k` items of `list` minus the positions in `skip` (ascending, each a valid position),
 * chosen uniformly at random, in random order. Draws and result are exactly those of
 * `sample(filtered, k, rng)` where `filtered` is `list` without the skipped positions: the same
 * partial Fisher–Yates, run over a virtual copy in which only displaced positions are stored.
 */
export function sampleExcept<T>(list: readonly T[], skip: readonly number[], k: number, rng: Rng): T[] {
  const len = list.length - skip.length;
  const n = Math.min(Math.max(0, Math.floor(k)), len);
  // Position p of the virtual copy is list[p + (skipped positions at or before it)].
  const at = (p: number): T => {
    let i = p;
    for (const s of skip) if (i >= s) i++;
    return list[i] as T;
  };
  const moved = new Map<number, T>();
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng.next() * (len - i));
    // Swap positions i and j; position i is final (later draws only reach positions above it).
    const atI = moved.has(i) ? (moved.get(i) as T) : at(i);
    const atJ = moved.has(j) ? (moved.get(j) as T) : at(j);
    moved.set(j, atI);
    out.push(atJ);
  }
  return out;
}
