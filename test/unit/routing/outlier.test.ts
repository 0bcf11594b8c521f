// Passive health checks (core/routing/outlier.ts): ejection after failures in a row, its length
// doubling and capped, the cap on how many instances are out at once, and the bound on its state.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ejectionsAllowed,
  ejectionTimeMs,
  OUTLIER_LIMITS,
  OutlierDetector,
  outlierSettings,
} from '../../../src/core/routing/outlier.js';

const DEFAULTS = outlierSettings({});

/** `n` results for `id` at `nowMs`; the ejection length the last one caused, if any. */
function results(d: OutlierDetector, id: string, ok: boolean, n: number, nowMs: number, total = 2) {
  let out: number | undefined;
  for (let i = 0; i < n; i++) out = d.onResult(id, ok, nowMs, DEFAULTS, total);
  return out;
}

describe('passive health checks: outlier ejection', () => {
  it('ejects after maxFailures in a row (default 5) for baseEjectionTimeMs (default 30 s), then takes the instance back', () => {
    const d = new OutlierDetector();
    assert.equal(results(d, 'a', false, 4, 0), undefined);
    assert.equal(d.isEjected('a', 0), false);
    assert.equal(results(d, 'a', false, 1, 0), 30_000);
    assert.equal(d.isEjected('a', 29_999), true);
    assert.deepEqual(d.ejectedNow(1), [{ id: 'a', untilMs: 30_000 }]);
    assert.equal(d.isEjected('a', 30_000), false);
    assert.equal(d.idle, true);
  });

  it('a success ends the run of failures', () => {
    const d = new OutlierDetector();
    results(d, 'a', false, 4, 0);
    results(d, 'a', true, 1, 0);
    assert.equal(results(d, 'a', false, 4, 0), undefined);
    assert.equal(d.isEjected('a', 0), false);
    assert.equal(d.size, 1, 'only the instance whose last call failed has state');
    results(d, 'a', true, 1, 0);
    assert.equal(d.size, 0);
  });

  it('ejections in a row double, up to maxEjectionTimeMs; a success after the return starts over', () => {
    const d = new OutlierDetector();
    let now = 0;
    const lengths: number[] = [];
    for (let i = 0; i < 6; i++) {
      const len = results(d, 'a', false, 5, now) as number;
      lengths.push(len);
      now += len;
    }
    assert.deepEqual(lengths, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
    results(d, 'a', true, 1, now);
    assert.equal(results(d, 'a', false, 5, now), 30_000);
    assert.equal(ejectionTimeMs(DEFAULTS, 1_000_000), 300_000, 'no overflow however many in a row');
  });

  it('results of calls that end while the instance is ejected neither end the ejection nor extend it', () => {
    const d = new OutlierDetector();
    results(d, 'a', false, 5, 0);
    results(d, 'a', true, 3, 10);
    results(d, 'a', false, 50, 10);
    assert.deepEqual(d.ejectedNow(10), [{ id: 'a', untilMs: 30_000 }]);
  });

  it('ejects at most maxEjectionPercent of the instances at once, but one at least; none at 0%', () => {
    assert.equal(ejectionsAllowed(DEFAULTS, 3), 1);
    assert.equal(ejectionsAllowed(DEFAULTS, 25), 2);
    assert.equal(ejectionsAllowed(outlierSettings({ maxEjectionPercent: 0 }), 25), 0);
    const d = new OutlierDetector();
    assert.equal(results(d, 'a', false, 5, 0, 3), 30_000);
    assert.equal(results(d, 'b', false, 5, 0, 3), undefined, 'one of three is already out');
    assert.equal(d.isEjected('b', 0), false);
    // When a returns, b's next failure ejects it (its run was counted all along).
    assert.equal(results(d, 'b', false, 1, 30_000, 3), 30_000);
    const none = new OutlierDetector();
    const off = outlierSettings({ maxEjectionPercent: 0 });
    for (let i = 0; i < 20; i++) none.onResult('a', false, 0, off, 3);
    assert.equal(none.isEjected('a', 0), false);
  });

  it('forgets instances that are gone, and keeps state for at most entriesMax instances', () => {
    const d = new OutlierDetector();
    results(d, 'a', false, 5, 0);
    results(d, 'b', false, 2, 0);
    d.retain((id) => id === 'b');
    assert.equal(d.size, 1);
    assert.equal(d.idle, true);
    for (let i = 0; i < OUTLIER_LIMITS.entriesMax + 10; i++) d.onResult(`x${i}`, false, 0, DEFAULTS, 1e6);
    assert.equal(d.size, OUTLIER_LIMITS.entriesMax);
  });

  it('property: never more instances out at once than allowed, and each returns when its time is up', () => {
    const step = fc.record({
      id: fc.integer({ min: 0, max: 5 }),
      ok: fc.boolean(),
      advanceMs: fc.integer({ min: 0, max: 40_000 }),
    });
    const settings = fc.record({
      maxFailures: fc.integer({ min: 1, max: 4 }),
      baseEjectionTimeMs: fc.integer({ min: 1, max: 50_000 }),
      maxEjectionTimeMs: fc.integer({ min: 50_000, max: 200_000 }),
      maxEjectionPercent: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(settings, fc.array(step, { maxLength: 200 }), (p, steps) => {
        const s = outlierSettings(p);
        const total = 6;
        const d = new OutlierDetector();
        const until = new Map<string, number>();
        let now = 0;
        for (const { id, ok, advanceMs } of steps) {
          now += advanceMs;
          const len = d.onResult(`i${id}`, ok, now, s, total);
          if (len !== undefined) {
            assert.ok(
              len >= Math.min(s.baseEjectionTimeMs, s.maxEjectionTimeMs) && len <= s.maxEjectionTimeMs,
            );
            until.set(`i${id}`, now + len);
          }
          const out = d.ejectedNow(now);
          assert.ok(out.length <= ejectionsAllowed(s, total));
          for (let i = 0; i < total; i++)
            assert.equal(d.isEjected(`i${i}`, now), (until.get(`i${i}`) ?? 0) > now);
        }
      }),
    );
  });
});
