// The simulator's event queue: events run in (time, order scheduled) order, and a batch
// scheduled with pushAll() runs exactly as the same events pushed one by one would.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventQueue } from '../../../cluster-sim/sim/events.js';

/** Run a queue to the end; every event may schedule more (a bounded number of times). */
function drain(q: EventQueue): void {
  for (let i = 0; i < 100_000 && q.peekMs() !== undefined; i++) q.runNext();
  assert.equal(q.peekMs(), undefined);
  assert.equal(q.size, 0);
}

// A plan: batches of delays (ms, with ties), each event possibly scheduling a follow-up batch.
const planArb = fc.array(
  fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.boolean()), { minLength: 0, maxLength: 12 }),
  { minLength: 1, maxLength: 8 },
);

function play(plan: Array<Array<[number, boolean]>>, batched: boolean): string[] {
  const q = new EventQueue();
  const log: string[] = [];
  let now = 0;
  let next = 0;
  const schedule = (label: string): void => {
    const batch = plan[next++ % plan.length] as Array<[number, boolean]>;
    if (next > 40) return;
    const run = (i: number): void => {
      const [, spawn] = batch[i] as [number, boolean];
      log.push(`${now} ${label}.${i}`);
      if (spawn) schedule(`${label}.${i}`);
    };
    if (batched) {
      q.pushAll(
        batch.map(([d]) => now + d),
        run,
      );
    } else {
      for (const [i, [d]] of batch.entries()) q.push(now + d, () => run(i));
    }
  };
  schedule('b');
  for (let i = 0; i < 100_000; i++) {
    const t = q.peekMs();
    if (t === undefined) break;
    assert.ok(t >= now, 'time never runs backwards');
    now = t;
    q.runNext();
  }
  return log;
}

describe('EventQueue', () => {
  it('runs events by time, then in the order they were scheduled', () => {
    const q = new EventQueue();
    const log: string[] = [];
    q.push(5, () => log.push('a'));
    q.push(1, () => log.push('b'));
    q.push(5, () => log.push('c'));
    q.pushAll([5, 0, 5], (i) => log.push(`d${i}`));
    q.push(0, () => log.push('e'));
    assert.equal(q.size, 7);
    drain(q);
    assert.deepEqual(log, ['d1', 'e', 'b', 'a', 'c', 'd0', 'd2']);
  });

  it('a pushAll batch runs exactly as the same events pushed one by one', () => {
    fc.assert(fc.property(planArb, (plan) => assert.deepEqual(play(plan, true), play(plan, false))));
  });

  it('refuses an event at a non-finite time', () => {
    const q = new EventQueue();
    assert.throws(() => q.push(Number.NaN, () => {}), /non-finite/);
    assert.throws(() => q.pushAll([1, Number.POSITIVE_INFINITY], () => {}), /non-finite/);
  });
});
