// Token buckets of service-defaults rate limits: a scripted clock through bursts and refills, and a
// property over random request times: what a bucket lets through in any window is at most its
// burst plus its rate over the window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRng } from '../../../src/core/rand.js';
import { compileRateLimits, limitAt, TokenBucket } from '../../../src/core/routing/rate-limit.js';
import type { RequestInfo } from '../../../src/core/routing/types.js';

const RUNS = 300;

describe('TokenBucket', () => {
  it('lets a burst through, then one request per refilled token; a clock stepping back refills nothing', () => {
    const b = new TokenBucket({ requestsPerSecond: 2, requestsMaxBurst: 3 }, 1_000);
    assert.deepEqual(
      [1_000, 1_000, 1_000, 1_000].map((t) => b.take(t)),
      [true, true, true, false],
    );
    assert.equal(b.take(1_400), false, '0.8 of a token');
    assert.equal(b.take(1_500), true, 'one token after 500 ms at 2 a second');
    assert.equal(b.take(1_500), false);
    assert.equal(b.take(900), false, 'time going back refills nothing');
    assert.equal(b.take(1_999), false, 'and the clock is not wound back by it');
    assert.equal(b.take(2_000), true);
    // A long quiet spell fills it to the burst, no further.
    assert.deepEqual(
      [60_000, 60_000, 60_000, 60_000].map((t) => b.take(t)),
      [true, true, true, false],
    );
  });

  it('never lets through more than the burst plus the rate over any window (random times)', () => {
    const rng = new SeededRng(11);
    for (let run = 0; run < RUNS; run++) {
      const rate = 1 + rng.int(50);
      const burst = 1 + rng.int(20);
      const b = new TokenBucket({ requestsPerSecond: rate, requestsMaxBurst: burst }, 0);
      const accepted: number[] = [];
      let t = 0;
      for (let i = 0; i < 400; i++) {
        t += rng.int(3) === 0 ? rng.int(200) : 0;
        if (b.take(t)) accepted.push(t);
      }
      for (let i = 0; i < accepted.length; i++) {
        for (let j = i; j < accepted.length; j++) {
          const windowMs = (accepted[j] as number) - (accepted[i] as number);
          assert.ok(
            j - i + 1 <= burst + (rate * windowMs) / 1000 + 1e-9,
            `run ${run}: ${j - i + 1} in ${windowMs} ms`,
          );
        }
      }
    }
  });
});

describe('compileRateLimits', () => {
  const req = (path: string): RequestInfo => ({ path, method: 'GET', query: '', headers: {} });
  const limits = {
    instance: { requestsPerSecond: 100, requestsMaxBurst: 100 },
    routes: [
      { match: { pathPrefix: '/reports/' }, requestsPerSecond: 2, requestsMaxBurst: 2 },
      { match: { pathExact: '/login' }, requestsPerSecond: 5, requestsMaxBurst: 5 },
    ],
  };

  it('counts a request against the first route whose path matches, else the instance', () => {
    const c = compileRateLimits(limits);
    assert.equal(c.pick(req('/reports/q1')), 0);
    assert.equal(c.pick(req('/login')), 1);
    assert.equal(c.pick(req('/other')), -1);
    assert.equal(limitAt(limits, -1)?.requestsPerSecond, 100);
    // However the path is written.
    assert.equal(c.pick(req('/%72eports/q1')), 0);
    assert.equal(c.pick(req('//login')), 1);
    // Routes only: a request matching none is not limited.
    assert.equal(compileRateLimits({ routes: limits.routes }).pick(req('/other')), undefined);
  });
});
