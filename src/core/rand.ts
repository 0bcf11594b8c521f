// Seeded pseudo-random generator for the pure cores (mulberry32: 32-bit state, fast, good enough
// for protocol choices; not for cryptography). The shell seeds it from crypto randomness, the
// simulator from its run seed.
import type { Rng } from './membership/types.js';

export class SeededRng implements Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Fisher–Yates shuffle in place with the given generator. */
export function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/**
 * Up to `k` items chosen uniformly at random, in random order: a partial Fisher–Yates that
 * draws k numbers instead of shuffling all n. Reorders `items` in place.
 */
export function sample<T>(items: T[], k: number, rng: Rng): T[] {
  const n = Math.min(Math.max(0, Math.floor(k)), items.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng.next() * (items.length - i));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items.slice(0, n);
}
