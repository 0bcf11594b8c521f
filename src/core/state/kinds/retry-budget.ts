// The retry budget of service-router (Linkerd's retryBudget, Finagle's RetryBudget): retries to a
// service may add at most retryRatio of its requests, plus minRetriesPerSecond, over the last
// ttlMs. A route's numRetries says how often one request may be retried; the budget keeps every
// request's retries together from multiplying the load on a service that is failing anyway.
// The accounting lives in core/routing/retry-budget.ts.
import { field } from '../text.js';
import { at, type Errors, objectAt, optInt } from './spec-fields.js';

export interface RetryBudgetSpec {
  /** Retries as a share of requests, 0 to 10 (default 0.2: at most 20% more load). */
  retryRatio?: number;
  /** Retries allowed each second whatever the ratio, so a quiet service can still retry (default 10). */
  minRetriesPerSecond?: number;
  /** The window requests and retries are counted over (default 10 s). */
  ttlMs?: number;
}

/** Linkerd's defaults. */
export const RETRY_BUDGET_DEFAULTS = Object.freeze({
  retryRatio: 0.2,
  minRetriesPerSecond: 10,
  ttlMs: 10_000,
});

export const RETRY_BUDGET_LIMITS = Object.freeze({
  /** Above 10 retries a request, the route's numRetries (at most 10) already binds. */
  retryRatioMax: 10,
  minRetriesPerSecondMax: 100_000,
  /** The window is kept as one-second buckets: at most 60 of them. */
  ttlMsMin: 1_000,
  ttlMsMax: 60_000,
});

const FIELDS = ['retryRatio', 'minRetriesPerSecond', 'ttlMs'] as const;

/** Check a router's `retryBudget` at `path`. */
export function checkRetryBudget(v: unknown, path: string, errors: Errors): void {
  const o = objectAt(v, path, FIELDS, errors);
  if (o === undefined) return;
  const ratio = field(o, 'retryRatio');
  if (
    ratio !== undefined &&
    (typeof ratio !== 'number' ||
      !Number.isFinite(ratio) ||
      ratio < 0 ||
      ratio > RETRY_BUDGET_LIMITS.retryRatioMax)
  )
    errors.push({
      field: at(path, 'retryRatio'),
      message: `must be a number from 0 to ${RETRY_BUDGET_LIMITS.retryRatioMax} (0.2: retries add at most 20% to the requests)`,
    });
  optInt(o, 'minRetriesPerSecond', path, 0, RETRY_BUDGET_LIMITS.minRetriesPerSecondMax, errors);
  optInt(o, 'ttlMs', path, RETRY_BUDGET_LIMITS.ttlMsMin, RETRY_BUDGET_LIMITS.ttlMsMax, errors);
}
