// Retry budgets (core/routing/retry-budget.ts): retries allowed up to minRetriesPerSecond × the
// window plus retryRatio × the window's requests, counted per second, forgotten after ttlMs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RetryBudget, retryBudgetSettings } from '../../../src/core/routing/retry-budget.js';

/** Retries taken at `nowMs` until the budget refuses one (bounded). */
function drain(b: RetryBudget, nowMs: number): number {
  let n = 0;
  while (n < 10_000 && b.canRetry(nowMs)) {
    b.onRetry(nowMs);
    n++;
  }
  return n;
}

describe('retry budgets', () => {
  it('allows minRetriesPerSecond × the window with no requests, and retryRatio of the requests on top', () => {
    const b = new RetryBudget(
      retryBudgetSettings({ retryRatio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 }),
    );
    assert.equal(drain(b, 0), 10);
    for (let i = 0; i < 100; i++) b.onRequest(500);
    assert.equal(drain(b, 900), 20, '20% of 100 requests');
  });

  it('forgets requests and retries older than the window', () => {
    const b = new RetryBudget(retryBudgetSettings({ retryRatio: 0, minRetriesPerSecond: 2, ttlMs: 3_000 }));
    for (let i = 0; i < 4; i++) b.onRetry(0);
    assert.equal(drain(b, 1_500), 2, 'six in a window of three seconds');
    assert.equal(b.canRetry(2_999), false);
    // At 3 s the four of the first second have left the window; the two of 1.5 s have not.
    assert.equal(drain(b, 3_000), 4);
  });

  it('keeps its counts when the settings change but not the window, and starts over when it does', () => {
    const b = new RetryBudget(retryBudgetSettings({ retryRatio: 0, minRetriesPerSecond: 1, ttlMs: 2_000 }));
    assert.equal(drain(b, 0), 2);
    b.update(retryBudgetSettings({ retryRatio: 0, minRetriesPerSecond: 2, ttlMs: 2_000 }));
    assert.equal(drain(b, 0), 2, 'two more: four in all');
    b.update(retryBudgetSettings({ retryRatio: 0, minRetriesPerSecond: 1, ttlMs: 5_000 }));
    assert.equal(drain(b, 0), 5);
  });

  it('allows whole retries only: 20% of one request is none, of five is one, 7% of 100 is seven', () => {
    const b = new RetryBudget(retryBudgetSettings({ retryRatio: 0.2, minRetriesPerSecond: 0, ttlMs: 1_000 }));
    b.onRequest(0);
    assert.equal(b.canRetry(0), false);
    for (let i = 0; i < 4; i++) b.onRequest(0);
    assert.equal(drain(b, 0), 1);
    const c = new RetryBudget(
      retryBudgetSettings({ retryRatio: 0.07, minRetriesPerSecond: 0, ttlMs: 1_000 }),
    );
    for (let i = 0; i < 100; i++) c.onRequest(0);
    assert.equal(drain(c, 0), 7);
  });

  it('ignores buckets stamped later than now (a clock that went back) rather than counting them', () => {
    const b = new RetryBudget(retryBudgetSettings({ retryRatio: 0, minRetriesPerSecond: 1, ttlMs: 3_000 }));
    assert.equal(drain(b, 5_000), 3);
    assert.equal(drain(b, 4_000), 3, 'the retries of second 5 are not in the window of second 4');
  });

  it('defaults to Linkerd’s: 20% of requests plus 10 a second over 10 s', () => {
    assert.deepEqual(retryBudgetSettings(undefined), {
      retryRatio: 0.2,
      minRetriesPerSecond: 10,
      ttlMs: 10_000,
    });
  });

  it('property: a retry is allowed exactly when a log of every event says the window has room', () => {
    const event = fc.record({ retry: fc.boolean(), advanceMs: fc.integer({ min: 0, max: 1_500 }) });
    const settings = fc.record({
      retryRatio: fc.double({ min: 0, max: 2, noNaN: true }),
      minRetriesPerSecond: fc.integer({ min: 0, max: 3 }),
      ttlMs: fc.integer({ min: 1_000, max: 5_000 }),
    });
    fc.assert(
      fc.property(settings, fc.array(event, { maxLength: 300 }), (p, events) => {
        const s = retryBudgetSettings(p);
        const b = new RetryBudget(s);
        const windowS = Math.ceil(s.ttlMs / 1_000);
        const log: Array<{ second: number; retry: boolean }> = [];
        let now = 0;
        for (const e of events) {
          now += e.advanceMs;
          const second = Math.floor(now / 1_000);
          if (e.retry) {
            const recent = log.filter((x) => second - x.second < windowS);
            const retries = recent.filter((x) => x.retry).length;
            const requests = recent.length - retries;
            // Whole retries only: one more must fit within the allowance.
            const room = retries + 1 <= s.minRetriesPerSecond * windowS + s.retryRatio * requests + 1e-9;
            assert.equal(b.canRetry(now), room);
            if (!room) continue;
            b.onRetry(now);
          } else b.onRequest(now);
          log.push({ second, retry: e.retry });
        }
      }),
    );
  });
});
