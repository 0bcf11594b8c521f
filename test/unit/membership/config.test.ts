// The timing formulas of config.ts, checked against the figures quoted in their documentation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_MEMBERSHIP_CONFIG as D,
  pushPullScaleMs,
  suspicionTimeoutMinMs,
  suspicionTimeoutMs,
} from '../../../src/core/membership/config.js';

describe('membership timing formulas', () => {
  it('suspicionTimeoutMinMs = mult × max(1, log10 n) × interval', () => {
    assert.equal(suspicionTimeoutMinMs(3, 1, 400), 1200);
    assert.equal(suspicionTimeoutMinMs(3, 10, 400), 1200);
    assert.equal(suspicionTimeoutMinMs(3, 30, 400), 1772);
    assert.equal(suspicionTimeoutMinMs(3, 1000, 400), 3600);
    assert.equal(suspicionTimeoutMinMs(4, 100, 1000), 8000);
    // n = 0 (cannot happen: self is always counted) still gives the floor.
    assert.equal(suspicionTimeoutMinMs(3, 0, 400), 1200);
  });

  it('suspicionTimeoutMs shrinks from max to min as confirmations arrive', () => {
    const min = 1200;
    const max = 6 * min;
    assert.equal(suspicionTimeoutMs(min, max, 0, 3), max);
    const one = suspicionTimeoutMs(min, max, 1, 3);
    const two = suspicionTimeoutMs(min, max, 2, 3);
    assert.ok(max > one && one > two && two > min, `${max} > ${one} > ${two} > ${min}`);
    assert.equal(one, Math.floor(max - (Math.log(2) / Math.log(4)) * (max - min)));
    assert.equal(suspicionTimeoutMs(min, max, 3, 3), min);
    assert.equal(suspicionTimeoutMs(min, max, 10, 3), min, 'never below min');
    assert.equal(suspicionTimeoutMs(min, max, 0, 0), min, 'no expected confirmations: min at once');
  });

  it('pushPullScaleMs is flat up to 32 nodes, then grows with log2(n/32) + 1', () => {
    assert.equal(pushPullScaleMs(15_000, 1), 15_000);
    assert.equal(pushPullScaleMs(15_000, 32), 15_000);
    assert.equal(pushPullScaleMs(15_000, 33), 30_000);
    assert.equal(pushPullScaleMs(15_000, 64), 30_000);
    assert.equal(pushPullScaleMs(15_000, 65), 45_000);
    assert.equal(pushPullScaleMs(15_000, 1000), 15_000 * 6);
  });

  it('defaults match the figures in their comments', () => {
    assert.equal(suspicionTimeoutMinMs(D.suspicionMult, 10, D.probeIntervalMs), 1200);
    assert.equal(suspicionTimeoutMinMs(D.suspicionMult, 1000, D.probeIntervalMs), 3600);
    assert.ok(D.probeTimeoutMs < D.probeIntervalMs);
    assert.ok(Object.isFrozen(D));
  });
});
