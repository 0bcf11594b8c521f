// A bound on the log records the proxy thread sends the agent's main thread. Every record is a
// message the main thread must decode and write through pino, on the event loop that runs the
// membership probes and Raft heartbeats; the worker cannot see how far behind the main thread is.
// Access logs (one record per request) at tens of thousands of requests a second, or a client
// reconnecting in a tight loop to a refused destination, would queue without limit there. So each
// second carries at most recordsPerSecondMax info records (access logs are info) and, on a budget of
// their own so a flood of access logs never hides them, warningsPerSecondMax warnings and errors;
// the rest are dropped, counted, and summed up in one warning when the second is over.
import type { LogFn } from './context.js';

export const LOG_GATE_LIMITS = Object.freeze({
  /**
   * Records passed to the main thread per second. Each costs it ~5–10 µs (a structured clone in,
   * a pino line out): at the cap, a few percent of one core, leaving the probes and heartbeats
   * their time. A request log at more requests a second than this is sampled by arrival.
   */
  recordsPerSecondMax: 5_000,
  /** Warnings and errors per second, besides the info records: they stay visible under any load. */
  warningsPerSecondMax: 1_000,
  windowMs: 1_000,
});

export class LogGate {
  private windowStartMs: number;
  private passed = 0;
  private warningsPassed = 0;
  private dropped = 0;
  private stopped = false;
  private summaryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly out: LogFn,
    /** Called for every record dropped (a metric). */
    private readonly onDrop: () => void = () => undefined,
    private readonly clock: () => number = () => performance.now(),
    private readonly perSecondMax: number = LOG_GATE_LIMITS.recordsPerSecondMax,
    private readonly warningsPerSecondMax: number = LOG_GATE_LIMITS.warningsPerSecondMax,
  ) {
    this.windowStartMs = clock();
  }

  /** The gated log function. */
  readonly log: LogFn = (level, msg, fields) => {
    const nowMs = this.clock();
    if (nowMs - this.windowStartMs >= LOG_GATE_LIMITS.windowMs) this.nextWindow(nowMs);
    if (
      level === 'info' ? this.passed < this.perSecondMax : this.warningsPassed < this.warningsPerSecondMax
    ) {
      if (level === 'info') this.passed++;
      else this.warningsPassed++;
      this.out(level, msg, fields);
      return;
    }
    this.dropped++;
    this.onDrop();
    // The warning goes out when this second is over, even if nothing is logged after it.
    if (this.summaryTimer === undefined && !this.stopped) {
      const waitMs = Math.max(0, this.windowStartMs + LOG_GATE_LIMITS.windowMs - nowMs);
      this.summaryTimer = setTimeout(() => this.nextWindow(this.clock()), waitMs);
      this.summaryTimer.unref();
    }
  };

  /** Records dropped in the current second so far (for tests). */
  get droppedNow(): number {
    return this.dropped;
  }

  private nextWindow(nowMs: number): void {
    if (this.summaryTimer !== undefined) clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    if (this.dropped > 0) {
      this.out('warn', 'proxy log records dropped', {
        dropped: this.dropped,
        limitPerSecond: this.perSecondMax,
      });
    }
    this.windowStartMs = nowMs;
    this.passed = 0;
    this.warningsPassed = 0;
    this.dropped = 0;
  }

  /** No more summaries after this (what this second dropped is counted in the metric already). */
  stop(): void {
    this.stopped = true;
    if (this.summaryTimer !== undefined) clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
  }
}
