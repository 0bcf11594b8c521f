// A retry budget's accounting (settings: state/kinds/retry-budget.ts): requests and retries to one
// service counted in one-second buckets over the last ttlMs (the current second and the whole
// seconds before it); a retry is allowed while the retries in the window, it included, stay within
// minRetriesPerSecond × the window's seconds + retryRatio × its requests.
// Counting per second rather than per event keeps the memory fixed (at most 60 buckets) and the
// cost of a request one increment.
//
// Pure: time comes in as nowMs, from a monotonic clock (a bucket from the future is ignored).
import { RETRY_BUDGET_DEFAULTS, type RetryBudgetSpec } from '../state/kinds/retry-budget.js';

export type RetryBudgetSettings = Required<RetryBudgetSpec>;

const BUCKET_MS = 1_000;

export function retryBudgetSettings(s: RetryBudgetSpec | undefined): RetryBudgetSettings {
  return { ...RETRY_BUDGET_DEFAULTS, ...s };
}

export class RetryBudget {
  private settings: RetryBudgetSettings;
  private buckets: number;
  /** Per bucket: the second it counts (floor(nowMs / 1000)), its requests and its retries. */
  private second: number[] = [];
  private requests: number[] = [];
  private retries: number[] = [];

  constructor(settings: RetryBudgetSettings) {
    this.settings = settings;
    this.buckets = 0;
    this.resize();
  }

  /** New settings: the counts are kept when the window keeps its length. */
  update(settings: RetryBudgetSettings): void {
    const resize = settings.ttlMs !== this.settings.ttlMs;
    this.settings = settings;
    if (resize) this.resize();
  }

  /** A request that may be retried began. */
  onRequest(nowMs: number): void {
    const i = this.bucket(nowMs);
    this.requests[i] = (this.requests[i] as number) + 1;
  }

  /** Would one more retry stay within the budget? */
  canRetry(nowMs: number): boolean {
    const now = Math.floor(nowMs / BUCKET_MS);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < this.buckets; i++) {
      const age = now - (this.second[i] as number);
      if (age < 0 || age >= this.buckets) continue;
      requests += this.requests[i] as number;
      retries += this.retries[i] as number;
    }
    const s = this.settings;
    // The window is `buckets` whole seconds (ttlMs rounded up), the current one included. A
    // fraction of a retry is not one: 0.2 × 1 request allows none, 0.2 × 5 one (with a little
    // slack for 0.07 × 100 not being exactly 7 in floating point).
    const allowed = s.minRetriesPerSecond * this.buckets + s.retryRatio * requests;
    return retries + 1 <= allowed + 1e-9;
  }

  /** A retry was sent. */
  onRetry(nowMs: number): void {
    const i = this.bucket(nowMs);
    this.retries[i] = (this.retries[i] as number) + 1;
  }

  /** The bucket of `nowMs`, emptied first if it last counted an older second. */
  private bucket(nowMs: number): number {
    const second = Math.floor(nowMs / BUCKET_MS);
    const i = ((second % this.buckets) + this.buckets) % this.buckets;
    if (this.second[i] !== second) {
      this.second[i] = second;
      this.requests[i] = 0;
      this.retries[i] = 0;
    }
    return i;
  }

  private resize(): void {
    this.buckets = Math.max(1, Math.ceil(this.settings.ttlMs / BUCKET_MS));
    this.second = new Array<number>(this.buckets).fill(Number.NEGATIVE_INFINITY);
    this.requests = new Array<number>(this.buckets).fill(0);
    this.retries = new Array<number>(this.buckets).fill(0);
  }
}
