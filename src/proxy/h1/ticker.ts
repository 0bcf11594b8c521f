// Coarse inactivity timeouts for the HTTP/1.1 relay's connections. Arming a Node socket timeout
// allocates a timer object and a bound function each time, and the relay re-armed several per
// request (client idle, upstream request, pooled idle): measurable at tens of thousands of
// requests a second. Here a connection only sets a flag when bytes move; one interval per worker
// sweeps the connections it watches and tells each how long it has been quiet, so a timeout fires
// between its limit and one tick later (HAProxy and nginx keep coarse timers for the same reason).

export interface Watched {
  /** Set by the connection whenever bytes move; the ticker clears it. */
  active: boolean;
  /** Called on each tick with the time the connection has been inactive. */
  onTick(quietMs: number): void;
}

export const TICKER_DEFAULTS = Object.freeze({
  /** Resolution of every relay timeout: a limit of L ms fires after L to L + tickMs of silence. */
  tickMs: 100,
});

interface Entry {
  quietSinceMs: number;
}

export class Ticker {
  private readonly watched = new Map<Watched, Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tickMs: number = TICKER_DEFAULTS.tickMs,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Start watching `w`: it counts as active now. */
  watch(w: Watched): void {
    w.active = false;
    this.watched.set(w, { quietSinceMs: this.clock() });
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      // Watching connections never keeps a worker alive on its own.
      this.timer.unref();
    }
  }

  unwatch(w: Watched): void {
    this.watched.delete(w);
    if (this.watched.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    return this.watched.size;
  }

  /** One sweep (the interval's body; tests call it with their own clock). */
  tick(): void {
    const nowMs = this.clock();
    // onTick may unwatch (a timeout closes its connection): Map iteration tolerates deletion.
    for (const [w, e] of this.watched) {
      if (w.active) {
        w.active = false;
        e.quietSinceMs = nowMs;
        continue;
      }
      w.onTick(nowMs - e.quietSinceMs);
    }
  }

  stop(): void {
    this.watched.clear();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** The relay's one ticker per thread (the proxy worker's, or a test's process). */
export const relayTicker = new Ticker();
