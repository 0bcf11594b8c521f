// Property tests of the update rules: whatever arrives, in whatever order, incarnations never go
// down and the table keeps its invariants (checked by the core's own checkInvariants()).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_MEMBERSHIP_CONFIG } from '../../../src/core/membership/config.js';
import { Membership } from '../../../src/core/membership/membership.js';
import type { MemberInfo, MemberState, Message, Update } from '../../../src/core/membership/types.js';
import { SeededRng } from '../../../src/core/rand.js';

// A small id pool so updates collide on the same members, including ourselves ('me').
const ids = ['me', 'a', 'b', 'c', 'd', 'e'];
const idArb = fc.constantFrom(...ids);
const incArb = fc.nat(6);
const infoArb: fc.Arbitrary<MemberInfo> = fc.record({
  id: idArb,
  name: fc.constantFrom('x', 'y'),
  address: fc.constantFrom('h1:1', 'h2:1'),
  zone: fc.constant(''),
  meta: fc.constantFrom<Record<string, string>>({}, { v: '1' }),
});
const updateArb: fc.Arbitrary<Update> = fc.oneof(
  fc.record({ t: fc.constant('alive' as const), info: infoArb, inc: incArb }),
  fc.record({ t: fc.constant('suspect' as const), id: idArb, inc: incArb, from: idArb }),
  fc.record({ t: fc.constant('failed' as const), id: idArb, inc: incArb, from: idArb }),
  fc.record({ t: fc.constant('left' as const), id: idArb, inc: incArb }),
);
const stateArb: fc.Arbitrary<MemberState> = fc.record({
  info: infoArb,
  status: fc.constantFrom('alive' as const, 'suspect' as const, 'failed' as const, 'left' as const),
  inc: incArb,
});

type Op =
  | { k: 'gossip'; from: string; updates: Update[] }
  | { k: 'recv'; from: string; msg: Message }
  | { k: 'tick'; dtMs: number }
  | { k: 'leave' }
  | { k: 'meta'; v: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('gossip' as const),
      from: idArb,
      updates: fc.array(updateArb, { maxLength: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('recv' as const),
      from: idArb,
      msg: fc.oneof(
        fc.record({ t: fc.constant('updates' as const), updates: fc.array(updateArb, { maxLength: 4 }) }),
        fc.record({
          t: fc.constant('push-pull' as const),
          join: fc.boolean(),
          reply: fc.boolean(),
          states: fc.array(stateArb, { maxLength: 6 }),
        }),
        fc.record({ t: fc.constant('ping' as const), seq: fc.nat(20), target: idArb, suspect: fc.boolean() }),
        fc.record({ t: fc.constant('ack' as const), seq: fc.nat(20) }),
        fc.record({ t: fc.constant('nack' as const), seq: fc.nat(20) }),
        fc.record({
          t: fc.constant('ping-req' as const),
          seq: fc.nat(20),
          target: idArb,
          targetAddress: fc.constant('h:1'),
        }),
      ),
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('tick' as const), dtMs: fc.nat(3000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('meta' as const), v: fc.string({ maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'leave' as const }) },
);

function run(ops: Op[], seed: number, membersMax: number): void {
  let now = 0;
  const m = new Membership({
    self: { id: 'me', name: 'me', address: 'me:1', zone: '', meta: {} },
    incarnation: 0,
    config: { ...DEFAULT_MEMBERSHIP_CONFIG, membersMax, failedReapMs: 4000, leftReapMs: 2000 },
    rng: new SeededRng(seed),
    nowMs: now,
  });
  let leftAt: number | undefined;
  for (const op of ops) {
    const before = new Map(m.members().map((x) => [x.id, x]));
    switch (op.k) {
      case 'gossip':
        m.receiveGossip(op.from, op.updates, now);
        break;
      case 'recv':
        m.receive(op.from, op.msg, now);
        break;
      case 'tick':
        now += op.dtMs;
        m.tick(now);
        break;
      case 'meta':
        m.setMeta({ v: op.v }, now);
        break;
      case 'leave':
        m.leave(now);
        leftAt ??= now;
        break;
    }
    m.checkInvariants();
    const out = m.drain();
    const after = m.members();
    assert.ok(after.length <= membersMax);
    for (const x of after) {
      const prev = before.get(x.id);
      if (prev !== undefined) {
        assert.ok(
          x.incarnation >= prev.incarnation,
          `${x.id}: incarnation ${prev.incarnation} → ${x.incarnation}`,
        );
        if (x.status !== prev.status) assert.equal(x.statusChangedAtMs, now);
      }
    }
    const me = m.self();
    assert.equal(me.status, leftAt === undefined ? 'alive' : 'left');
    for (const e of out.events) {
      const prev = e.previous === undefined ? undefined : before.get(e.member.id);
      if (prev !== undefined) assert.ok(e.member.incarnation >= prev.incarnation);
    }
    for (const b of out.publish)
      assert.ok(b.length > 0 && b.length <= DEFAULT_MEMBERSHIP_CONFIG.updatesPerMessageMax);
    // What we publish about ourselves rises step by step and ends at what we hold.
    const mine = out.publish.flat().filter((u) => u.t === 'alive' && u.info.id === 'me');
    for (let i = 1; i < mine.length; i++) assert.ok((mine[i]?.inc ?? 0) > (mine[i - 1]?.inc ?? 0));
    if (mine.length > 0) assert.equal(mine.at(-1)?.inc, me.incarnation);
    if (leftAt !== undefined && op.k !== 'leave')
      assert.deepEqual(out, { messages: [], publish: [], events: [] });
    const d = m.nextDeadlineMs();
    if (d !== undefined) assert.ok(Number.isFinite(d), 'a deadline is a finite time');
    if (leftAt !== undefined) assert.equal(d, undefined);
  }
}

describe('membership update rules (properties)', () => {
  it('never lower an incarnation and keep the table invariants under random input', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.nat(), fc.constantFrom(3, 10), (ops, seed, max) =>
        run(ops, seed, max),
      ),
      { numRuns: 400 },
    );
  });

  it('an update applied twice changes nothing the second time', () => {
    fc.assert(
      fc.property(fc.array(updateArb, { maxLength: 10 }), updateArb, (history, u) => {
        const m = new Membership({
          self: { id: 'me', name: 'me', address: 'me:1', zone: '', meta: {} },
          incarnation: 0,
          config: DEFAULT_MEMBERSHIP_CONFIG,
          rng: new SeededRng(1),
          nowMs: 0,
        });
        m.receiveGossip('x', history, 1);
        m.receiveGossip('x', [u], 2);
        m.drain();
        const snapshot = m.members();
        const timers = snapshot.map((x) => m.suspicion(x.id)?.deadlineMs());
        m.receive('y', { t: 'updates', updates: [u] }, 3);
        const out = m.drain();
        // Refuting raises our own incarnation; every other member must be unchanged.
        const others = (ms: typeof snapshot) => ms.filter((x) => x.id !== 'me');
        assert.deepEqual(others(m.members()), others(snapshot));
        assert.deepEqual(
          snapshot.map((x) => m.suspicion(x.id)?.deadlineMs()),
          timers,
        );
        assert.ok(out.events.every((e) => e.member.id === 'me'));
        assert.ok(out.publish.flat().every((p) => p.t === 'alive' && p.info.id === 'me'));
      }),
      { numRuns: 1000 },
    );
  });
});
