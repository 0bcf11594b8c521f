// Lifeguard's suspicion timer and local-health score on their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Awareness } from '../../../src/core/membership/awareness.js';
import { Suspicion } from '../../../src/core/membership/suspicion.js';

const params = { suspicionMult: 5, suspicionMaxTimeoutMult: 6, probeIntervalMs: 1000 };

describe('Suspicion (Lifeguard)', () => {
  it('starts at max and each distinct confirmation shrinks the deadline toward min', () => {
    const s = new Suspicion('accuser', 10_000, 10, params);
    assert.equal(s.minMs, 5000);
    assert.equal(s.maxMs, 30_000);
    assert.equal(s.expected, 3);
    assert.equal(s.deadlineMs(), 10_000 + 30_000);
    let last = s.deadlineMs();
    for (const from of ['a', 'b', 'c']) {
      assert.equal(s.confirm(from), true);
      assert.ok(s.deadlineMs() < last, `${from} shrank the timer`);
      last = s.deadlineMs();
    }
    assert.equal(s.deadlineMs(), 10_000 + 5000, 'k confirmations reach min');
    assert.equal(s.confirm('d'), false, 'no more than k are counted');
  });

  it('ignores the accuser and repeated confirmers', () => {
    const s = new Suspicion('accuser', 0, 10, params);
    assert.equal(s.confirm('accuser'), false);
    assert.equal(s.confirm('a'), true);
    assert.equal(s.confirm('a'), false);
    assert.equal(s.confirmations(), 1);
  });

  it('expects no confirmations in a cluster too small to give them: min at once', () => {
    const s = new Suspicion('accuser', 0, 4, params); // n − 2 = 2 < k = 3
    assert.equal(s.expected, 0);
    assert.equal(s.deadlineMs(), s.minMs);
    assert.equal(s.confirm('a'), false);
  });
});

describe('Awareness (Lifeguard local health)', () => {
  it('stays within 0..max−1 and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    assert.equal(a.health(), 0);
    a.apply(-1);
    assert.equal(a.health(), 0);
    a.apply(3);
    assert.equal(a.scaleMs(400), 1600);
    a.apply(100);
    assert.equal(a.health(), 7);
    a.apply(-2);
    assert.equal(a.health(), 5);
    assert.throws(() => a.apply(0.5), /integer/);
    assert.throws(() => new Awareness(0), /positive/);
  });
});
