// How long (at least) the proxy thread's event loop was kept from running, and by which garbage collections:
// every request through this agent waits while its loop is blocked, so a tail an operator sees on
// mesh_proxy_request_duration_seconds can be told apart from one of the network or the services.
//
// The loop delay is sampled as Node's monitorEventLoopDelay does, by a timer that should fire every
// LOOP_WATCH_LIMITS.intervalMs and noting how late it fired, but into a cumulative Prometheus
// histogram rather than one reset at each scrape, so several scrapers can read it. Garbage
// collections come from a PerformanceObserver, with their kind.
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';

export const LOOP_WATCH_LIMITS = Object.freeze({
  /**
   * How often the loop is sampled. A block of B ms shows as a tick B − intervalMs to B ms late, so
   * one shorter than this may not show at all. 20 ms: 50 wake-ups a second, and only while a
   * connection is open (setActive).
   */
  intervalMs: 20,
  /**
   * The sampling goes on this long after the last connection closed, so clients that open a new
   * connection for every request do not switch the timer on and off each time.
   */
  lingerMs: 1_000,
});

/** Delay and pause buckets in seconds: from what a timer's millisecond granularity hides to a second. */
const BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

const GC_KINDS = new Map<number, string>([
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

/** The kind label of a GC entry (Node 16+ puts it in `detail.kind`). */
function gcKind(entry: PerformanceEntry): string {
  const kind = (entry as PerformanceEntry & { detail?: { kind?: unknown } }).detail?.kind;
  return (typeof kind === 'number' ? GC_KINDS.get(kind) : undefined) ?? 'other';
}

export class LoopWatch {
  readonly delay: Histogram;
  readonly gc: Histogram<'kind'>;
  private timer: NodeJS.Timeout | undefined;
  private observer: PerformanceObserver | undefined;
  private dueMs = 0;
  private active = false;
  /** When the last connection closed (valid while !active). */
  private idleSinceMs = 0;

  constructor(
    registry: Registry,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.delay = new Histogram({
      name: 'mesh_proxy_event_loop_delay_seconds',
      help: `How late the proxy thread ran a timer due every ${LOOP_WATCH_LIMITS.intervalMs} ms (resolution ~1 ms): its event loop was blocked at least that long, and requests through it waited`,
      buckets: BUCKETS_S,
      registers: [registry],
    });
    this.gc = new Histogram({
      name: 'mesh_proxy_gc_pause_seconds',
      help: 'Garbage collections of the proxy thread, by kind, and how long each took',
      labelNames: ['kind'] as const,
      buckets: BUCKETS_S,
      registers: [registry],
    });
  }

  /** Records GC pauses from now on, and samples the loop whenever `setActive(true)` says to. */
  start(): void {
    if (this.observer !== undefined) return;
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.gc.observe({ kind: gcKind(e) }, e.duration / 1_000);
    });
    this.observer.observe({ entryTypes: ['gc'] });
    if (this.active) this.sample();
  }

  /**
   * Sample the loop only while the proxy has a connection open (and LOOP_WATCH_LIMITS.lingerMs
   * after): a block then delays requests, and with none open it delays nothing. An idle agent so spends nothing on the timer, whose 50
   * wake-ups a second cost ~9 ms of CPU a second on the test VM.
   */
  setActive(active: boolean): void {
    this.active = active;
    if (!active) this.idleSinceMs = this.now();
    else if (this.observer !== undefined) this.sample();
  }

  /** Whether the loop is being sampled now. */
  get sampling(): boolean {
    return this.timer !== undefined;
  }

  private sample(): void {
    if (this.timer !== undefined) return;
    this.dueMs = this.now() + LOOP_WATCH_LIMITS.intervalMs;
    this.timer = setInterval(() => this.tick(), LOOP_WATCH_LIMITS.intervalMs);
    this.timer.unref();
  }

  private pause(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample: how late this tick came. Public for tests, which drive it with a scripted clock. */
  tick(): void {
    const now = this.now();
    this.delay.observe(Math.max(0, now - this.dueMs) / 1_000);
    // The next tick is due an interval after this one ran: setInterval reschedules from when its
    // callback runs, so a block is counted once, not again at every tick after it.
    this.dueMs = now + LOOP_WATCH_LIMITS.intervalMs;
    if (!this.active && now - this.idleSinceMs >= LOOP_WATCH_LIMITS.lingerMs) this.pause();
  }

  stop(): void {
    this.pause();
    this.observer?.disconnect();
    this.observer = undefined;
  }
}
