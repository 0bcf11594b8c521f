// The callers' circuit breakers (core/routing/upstream-limits.ts): which call holds a slot, which
// waits and which is refused, by which limit; waiting requests go first come first served; the
// counts stay right through any sequence of calls, ends, cancels and limit changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type CallKind, LimitGate } from '../../../src/core/routing/upstream-limits.js';
import type { UpstreamLimits } from '../../../src/core/state/kinds/upstream-config.js';

describe('circuit breakers (upstream limits)', () => {
  it('refuses a TCP connection past maxConnections, and takes one again once another closes', () => {
    const g = new LimitGate<string>({ maxConnections: 2 });
    assert.equal(g.enter('tcp', 'a'), 'admitted');
    assert.equal(g.enter('tcp', 'b'), 'admitted');
    assert.deepEqual(g.enter('tcp', 'c'), { refused: 'maxConnections' });
    assert.deepEqual(g.leave(), []);
    assert.equal(g.enter('tcp', 'd'), 'admitted');
    assert.equal(g.pending, 0, 'a connection never waits');
  });

  it('refuses an HTTP/2 call past maxConcurrentRequests; maxConnections does not apply to it', () => {
    const g = new LimitGate<string>({ maxConcurrentRequests: 1, maxConnections: 1 });
    assert.equal(g.enter('h2', 'a'), 'admitted');
    assert.deepEqual(g.enter('h2', 'b'), { refused: 'maxConcurrentRequests' });
    const h = new LimitGate<string>({ maxConnections: 1 });
    assert.equal(h.enter('h2', 'a'), 'admitted');
    assert.equal(h.enter('h2', 'b'), 'admitted');
  });

  it('queues HTTP/1.1 requests past maxConnections up to maxPendingRequests, and lets them through in order', () => {
    const g = new LimitGate<string>({ maxConnections: 2, maxPendingRequests: 2 });
    assert.equal(g.enter('h1', 'a'), 'admitted');
    assert.equal(g.enter('h1', 'b'), 'admitted');
    assert.equal(g.enter('h1', 'c'), 'queued');
    assert.equal(g.enter('h1', 'd'), 'queued');
    assert.deepEqual(g.enter('h1', 'e'), { refused: 'maxPendingRequests' });
    assert.equal(g.active, 2);
    assert.equal(g.pending, 2);
    assert.deepEqual(g.leave(), ['c']);
    assert.deepEqual(g.leave(), ['d']);
    assert.deepEqual(g.leave(), []);
    assert.equal(g.active, 1);
    assert.equal(g.pending, 0);
  });

  it('refuses at once with maxPendingRequests 0, and past maxConcurrentRequests before queueing', () => {
    const none = new LimitGate<string>({ maxConnections: 1, maxPendingRequests: 0 });
    assert.equal(none.enter('h1', 'a'), 'admitted');
    assert.deepEqual(none.enter('h1', 'b'), { refused: 'maxPendingRequests' });
    const both = new LimitGate<string>({ maxConnections: 1, maxConcurrentRequests: 1 });
    assert.equal(both.enter('h1', 'a'), 'admitted');
    assert.deepEqual(both.enter('h1', 'b'), { refused: 'maxConcurrentRequests' });
  });

  it('waits behind the queue: a request arriving while others wait does not pass them', () => {
    const g = new LimitGate<string>({ maxConnections: 1 });
    assert.equal(g.enter('h1', 'a'), 'admitted');
    assert.equal(g.enter('h1', 'b'), 'queued');
    // Raised limits, as from a new snapshot: the waiting one goes first.
    assert.deepEqual(g.setLimits({ maxConnections: 3 }), ['b']);
    assert.equal(g.enter('h1', 'c'), 'admitted');
    assert.equal(g.active, 3);
  });

  it('forgets a cancelled request, and lets everyone through when the limits are lifted', () => {
    const g = new LimitGate<string>({ maxConnections: 1 });
    g.enter('h1', 'a');
    g.enter('h1', 'b');
    g.enter('h1', 'c');
    g.enter('h1', 'd');
    assert.equal(g.cancel('c'), true);
    assert.equal(g.cancel('c'), false);
    assert.equal(g.pending, 2);
    assert.deepEqual(g.setLimits({}), ['b', 'd']);
    assert.equal(g.active, 3);
    for (let i = 0; i < 3; i++) g.leave();
    assert.equal(g.idle, true);
  });

  it('keeps its queue small while requests time out behind one that never ends', () => {
    const g = new LimitGate<number>({ maxConnections: 1, maxPendingRequests: 4 });
    g.enter('h1', -1);
    for (let i = 0; i < 10_000; i++) {
      assert.equal(g.enter('h1', i), 'queued');
      if (i >= 3) assert.equal(g.cancel(i - 3), true);
      assert.ok(g.queueSlots <= 2 * g.pending + 33, `${g.queueSlots} slots for ${g.pending} waiting`);
    }
    assert.equal(g.pending, 3);
    assert.deepEqual(g.leave(), [9_997]);
  });

  it('counts right and serves in order through any sequence (model check)', () => {
    const limits = fc.record(
      {
        maxConnections: fc.integer({ min: 1, max: 4 }),
        maxPendingRequests: fc.integer({ min: 0, max: 4 }),
        maxConcurrentRequests: fc.integer({ min: 1, max: 5 }),
      },
      { requiredKeys: [] },
    );
    const op = fc.oneof(
      fc.record({ t: fc.constant('enter' as const), kind: fc.constantFrom<CallKind>('tcp', 'h1', 'h2') }),
      fc.record({ t: fc.constant('leave' as const), pick: fc.nat() }),
      fc.record({ t: fc.constant('cancel' as const), pick: fc.nat() }),
      fc.record({ t: fc.constant('limits' as const), limits }),
    );
    fc.assert(
      fc.property(limits, fc.array(op, { maxLength: 200 }), (start, ops) => {
        const g = new LimitGate<number>(start);
        let lim: UpstreamLimits = start;
        const holding: number[] = [];
        const waiting: number[] = [];
        let next = 0;
        const admit = (ws: number[]): void => {
          // In queue order, each one the oldest still waiting.
          for (const w of ws) assert.equal(waiting.shift(), w);
          holding.push(...ws);
        };
        for (const o of ops) {
          if (o.t === 'enter') {
            const id = next++;
            const before = holding.length;
            const r = g.enter(o.kind, id);
            if (r === 'admitted') {
              holding.push(id);
              const cap = o.kind === 'tcp' ? lim.maxConnections : lim.maxConcurrentRequests;
              if (cap !== undefined) assert.ok(before < cap, 'admitted under its cap');
              if (o.kind === 'h1') {
                assert.equal(waiting.length, 0, 'nobody passed');
                if (lim.maxConnections !== undefined) assert.ok(before < lim.maxConnections);
              }
            } else if (r === 'queued') {
              assert.equal(o.kind, 'h1');
              waiting.push(id);
              assert.ok(waiting.length <= (lim.maxPendingRequests ?? 1_024));
            }
          } else if (o.t === 'leave' && holding.length > 0) {
            holding.splice(o.pick % holding.length, 1);
            admit(g.leave());
          } else if (o.t === 'cancel' && waiting.length > 0) {
            const [w] = waiting.splice(o.pick % waiting.length, 1);
            assert.equal(g.cancel(w as number), true);
          } else if (o.t === 'limits') {
            lim = o.limits;
            admit(g.setLimits(o.limits));
          }
          assert.equal(g.active, holding.length);
          assert.equal(g.pending, waiting.length);
          assert.ok(g.queueSlots <= 2 * g.pending + 33);
          // Nobody waits while there is room for them.
          if (waiting.length > 0)
            assert.ok(
              (lim.maxConnections !== undefined && holding.length >= lim.maxConnections) ||
                (lim.maxConcurrentRequests !== undefined && holding.length >= lim.maxConcurrentRequests),
            );
        }
      }),
      { numRuns: 300, seed: 7 },
    );
  });
});
