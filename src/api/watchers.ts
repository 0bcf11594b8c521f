// Blocking queries (`?index=N&wait=D`, as Consul): a request waits until the index of what it
// reads rises above N, the wait runs out, or the client goes away. Shared by the replicated
// configuration (woken on every Raft apply) and the catalog (woken on every catalog change).
import { MeshError } from './types.js';

/** Blocking queries waiting at once per source; more get 'unavailable' instead of unbounded memory. */
export const WATCHERS_MAX = 4_096;

interface Watcher {
  changed: () => boolean;
  resolve: () => void;
}

export class Watchers {
  private readonly set = new Set<Watcher>();

  /** Resolves when `indexOf()` rises above `minIndex`, after `waitMs`, or when `signal` aborts. */
  watch(indexOf: () => number, minIndex: number, waitMs: number, signal: AbortSignal): Promise<void> {
    if (indexOf() > minIndex || minIndex === 0) return Promise.resolve();
    if (this.set.size >= WATCHERS_MAX) {
      return Promise.reject(new MeshError('unavailable', 'too many blocking queries in flight; retry'));
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.set.delete(w);
        resolve();
      };
      const w: Watcher = { changed: () => indexOf() > minIndex, resolve: done };
      const timer = setTimeout(done, waitMs);
      signal.addEventListener('abort', done, { once: true });
      this.set.add(w);
    });
  }

  /** Something changed: wake the queries whose index moved. */
  notify(): void {
    for (const w of this.set) if (w.changed()) w.resolve();
  }

  /** Shutting down: answer every waiting query now. */
  releaseAll(): void {
    for (const w of [...this.set]) w.resolve();
  }
}
