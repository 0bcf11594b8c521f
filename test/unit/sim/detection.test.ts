// The simulator's failure-detection check: a crash is timed until every live agent sees it gone,
// and one left undetected past the bound is a violation, except while the network is partitioned.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SafetyViolation } from '../../../cluster-sim/check/raft-safety.js';
import { DetectionWatch } from '../../../cluster-sim/sim/detection.js';

describe('sim DetectionWatch', () => {
  it('times a crash from when it happened until no live agent sees it alive or suspect', () => {
    const seeing = new Map([['n2', 2]]);
    const d = new DetectionWatch((id) => seeing.get(id) ?? 0);
    d.crashed('n2', 1_000);
    d.check('n2', 1_500);
    assert.deepEqual(d.times, [], 'two agents still see it');
    seeing.set('n2', 0);
    d.check('n2', 4_200);
    d.check('n2', 9_000); // seen once: not timed again
    assert.deepEqual(d.times, [3_200]);
  });

  it('does not time an agent it was not told crashed, or one forgotten', () => {
    const d = new DetectionWatch(() => 0);
    d.check('n3', 100);
    d.crashed('n4', 100);
    d.forget('n4');
    d.check('n4', 200);
    assert.deepEqual(d.times, []);
  });

  it('throws past the bound, not within it, not while partitioned, and drops an agent that is up again', () => {
    const d = new DetectionWatch(() => 1);
    d.crashed('n2', 0);
    d.checkBound(10_000, 10_000, false, () => false);
    d.checkBound(20_000, 10_000, true, () => false);
    assert.throws(
      () => d.checkBound(20_000, 10_000, false, () => false),
      (e: unknown) => e instanceof SafetyViolation && /n2 crashed at 0 ms and 1 live agents/.test(e.message),
    );
    d.checkBound(20_000, 10_000, false, (id) => id === 'n2');
    d.checkBound(60_000, 10_000, false, () => false); // no longer awaited
  });
});
