// Update rules, message handling and timers of one membership core, driven by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_MEMBERSHIP_CONFIG, type MembershipConfig } from '../../../src/core/membership/config.js';
import { Membership } from '../../../src/core/membership/membership.js';
import type { MemberInfo, Message, Output, Update } from '../../../src/core/membership/types.js';
import { SeededRng } from '../../../src/core/rand.js';

const info = (id: string, extra: Partial<MemberInfo> = {}): MemberInfo => ({
  id,
  name: id,
  address: `${id}:7946`,
  zone: '',
  meta: {},
  ...extra,
});
const alive = (id: string, inc: number, extra: Partial<MemberInfo> = {}): Update => ({
  t: 'alive',
  info: info(id, extra),
  inc,
});

function mk(config: Partial<MembershipConfig> = {}, incarnation = 0): Membership {
  const m = new Membership({
    self: info('me'),
    incarnation,
    config: { ...DEFAULT_MEMBERSHIP_CONFIG, ...config },
    rng: new SeededRng(7),
    nowMs: 0,
  });
  m.drain();
  return m;
}

/** A core that knows `peers` (learned from the topic), with its output drained. */
function withPeers(peers: string[], config: Partial<MembershipConfig> = {}): Membership {
  const m = mk(config);
  m.receiveGossip(
    'seed',
    peers.map((p) => alive(p, 0)),
    0,
  );
  m.drain();
  return m;
}

const flat = (o: Output) => o.publish.flat();
const sent = (o: Output, t: Message['t']) => o.messages.filter((x) => x.msg.t === t);

describe('membership update rules', () => {
  it('adds unknown members, reports a first sighting, and publishes only what it learned point-to-point', () => {
    const m = mk();
    m.receiveGossip('a', [alive('a', 0)], 1);
    let out = m.drain();
    assert.deepEqual(out.publish, [], 'topic updates are not republished');
    assert.equal(out.events.length, 1);
    assert.equal(out.events[0]?.previous, undefined);
    assert.equal(out.events[0]?.member.status, 'alive');
    m.receive('a', { t: 'updates', updates: [alive('b', 3)] }, 2);
    out = m.drain();
    assert.deepEqual(flat(out), [alive('b', 3)]);
    assert.equal(m.member('b')?.incarnation, 3);
    assert.equal(m.member('b')?.statusChangedAtMs, 2);
  });

  it('accepts alive only with a higher incarnation, whatever the status', () => {
    const m = withPeers(['a']);
    m.receiveGossip('x', [alive('a', 0, { address: 'elsewhere:1' })], 1);
    assert.equal(m.member('a')?.address, 'a:7946', 'same incarnation is ignored');
    m.receiveGossip('x', [{ t: 'failed', id: 'a', inc: 0, from: 'x' }], 2);
    assert.equal(m.member('a')?.status, 'failed');
    m.receiveGossip('x', [alive('a', 0)], 3);
    assert.equal(m.member('a')?.status, 'failed');
    m.receiveGossip('x', [alive('a', 1, { meta: { v: '2' } })], 4);
    assert.equal(m.member('a')?.status, 'alive');
    assert.deepEqual(m.member('a')?.meta, { v: '2' });
    const ev = m.drain().events.at(-1);
    assert.equal(ev?.previous, 'failed');
  });

  it('starts a suspicion, counts distinct confirmations, and fails the member when it expires', () => {
    const m = withPeers(['a', 'b', 'c', 'd', 'e']);
    m.receiveGossip('x', [{ t: 'suspect', id: 'nobody', inc: 0, from: 'b' }], 1);
    assert.equal(m.member('nobody'), undefined, 'unknown members are not created by suspicion');
    m.receiveGossip('b', [{ t: 'suspect', id: 'a', inc: 0, from: 'b' }], 10);
    assert.equal(m.member('a')?.status, 'suspect');
    const timer = m.suspicion('a');
    assert.ok(timer);
    // N = 6 live (5 peers + self): min = 3 × 400, max = 6 × min, k = 1.
    assert.equal(timer.deadlineMs(), 10 + 6 * 1200);
    m.receiveGossip('b', [{ t: 'suspect', id: 'a', inc: 0, from: 'b' }], 20);
    assert.equal(timer.confirmations(), 0, 'the accuser does not confirm its own suspicion');
    m.receiveGossip('c', [{ t: 'suspect', id: 'a', inc: 0, from: 'c' }], 30);
    assert.equal(timer.deadlineMs(), 10 + 1200);
    assert.deepEqual(m.drain().publish, [], 'topic suspicions are not republished');
    assert.ok((m.nextDeadlineMs() ?? 0) <= 1210);
    m.tick(1210);
    assert.equal(m.member('a')?.status, 'failed');
    const out = m.drain();
    assert.deepEqual(flat(out), [{ t: 'failed', id: 'a', inc: 0, from: 'me' }]);
    assert.equal(out.events[0]?.previous, 'suspect');
    assert.equal(m.stats().membersFailed, 1);
  });

  it('ignores suspicions at an older incarnation and clears suspicion on a newer alive', () => {
    const m = withPeers(['a', 'b']);
    m.receiveGossip('x', [alive('a', 4)], 1);
    m.receiveGossip('b', [{ t: 'suspect', id: 'a', inc: 3, from: 'b' }], 2);
    assert.equal(m.member('a')?.status, 'alive');
    m.receiveGossip('b', [{ t: 'suspect', id: 'a', inc: 4, from: 'b' }], 3);
    assert.equal(m.member('a')?.status, 'suspect');
    m.receiveGossip('a', [alive('a', 5)], 4);
    assert.equal(m.member('a')?.status, 'alive');
    assert.equal(m.suspicion('a'), undefined);
    m.checkInvariants();
  });

  it('a late failed does not override left, and a late leave turns failed into left', () => {
    const m = withPeers(['a', 'b']);
    m.receiveGossip('a', [{ t: 'left', id: 'a', inc: 1 }], 1);
    m.receiveGossip('x', [{ t: 'failed', id: 'a', inc: 1, from: 'x' }], 2);
    m.receiveGossip('x', [{ t: 'suspect', id: 'a', inc: 1, from: 'x' }], 2);
    assert.equal(m.member('a')?.status, 'left');
    m.receiveGossip('x', [{ t: 'failed', id: 'b', inc: 0, from: 'x' }], 3);
    m.receiveGossip('b', [{ t: 'left', id: 'b', inc: 0 }], 4);
    assert.equal(m.member('b')?.status, 'left');
    m.receiveGossip('b', [{ t: 'left', id: 'b', inc: 0 }], 5);
    assert.equal(m.member('b')?.statusChangedAtMs, 4);
  });

  it('refutes claims about itself with a higher incarnation, also telling a point-to-point accuser', () => {
    const m = mk({}, 5);
    m.receiveGossip('x', [{ t: 'suspect', id: 'me', inc: 4, from: 'x' }], 1);
    assert.equal(m.self().incarnation, 5, 'an older accusation is already refuted');
    m.receiveGossip('x', [{ t: 'suspect', id: 'me', inc: 7, from: 'x' }], 2);
    assert.equal(m.self().incarnation, 8);
    assert.equal(m.self().status, 'alive');
    assert.equal(m.localHealth(), 1, 'having to refute lowers local health');
    let out = m.drain();
    assert.deepEqual(flat(out), [{ t: 'alive', info: info('me'), inc: 8 }]);
    assert.deepEqual(out.messages, []);
    m.receive('y', { t: 'updates', updates: [{ t: 'failed', id: 'me', inc: 8, from: 'y' }] }, 3);
    m.receive('y', { t: 'updates', updates: [{ t: 'left', id: 'me', inc: 9 }] }, 3);
    assert.equal(m.self().incarnation, 10);
    m.receiveGossip('z', [alive('me', 10)], 3);
    assert.equal(m.self().incarnation, 10, 'our own current state echoed back is not refuted');
    m.receiveGossip('z', [alive('me', 11, { address: 'stolen:1' })], 3);
    assert.equal(m.self().incarnation, 12);
    assert.equal(m.self().address, 'me:7946');
    assert.equal(m.stats().refutations, 4);
    out = m.drain();
    assert.equal(sent(out, 'updates').length, 2);
    assert.ok(sent(out, 'updates').every((o) => o.to === 'y'));
    m.receiveGossip('z', [alive('me', 10, { address: 'old:1' })], 4);
    assert.equal(m.self().incarnation, 12, 'older news about us is not refuted');
  });

  it('bounds the table at membersMax and counts the dropped', () => {
    const m = mk({ membersMax: 3 });
    m.receiveGossip(
      'x',
      ['a', 'b', 'c', 'd'].map((p) => alive(p, 0)),
      1,
    );
    assert.equal(m.members().length, 3);
    assert.equal(m.stats().updatesDropped, 2);
  });

  it('reaps failed and left members after their timeouts, without an event', () => {
    const m = withPeers(['a', 'b', 'c'], { failedReapMs: 10_000, leftReapMs: 5_000 });
    m.receiveGossip('x', [{ t: 'failed', id: 'a', inc: 0, from: 'x' }], 100);
    m.receiveGossip('b', [{ t: 'left', id: 'b', inc: 0 }], 200);
    m.drain();
    m.tick(5_199);
    assert.ok(m.member('b'));
    m.tick(5_200);
    assert.equal(m.member('b'), undefined);
    assert.ok(m.member('a'));
    m.tick(10_100);
    assert.equal(m.member('a'), undefined);
    assert.deepEqual(
      m.members().map((x) => x.id),
      ['c', 'me'],
    );
    // Probes of the silent peers raised events of their own; none is about the reaped members.
    assert.deepEqual(
      m.drain().events.filter((e) => e.member.id === 'a' || e.member.id === 'b'),
      [],
    );
    m.checkInvariants();
  });

  it('sorts members by name then id', () => {
    const m = mk();
    m.receiveGossip(
      'x',
      [alive('z', 0, { name: 'alpha' }), alive('y', 0, { name: 'alpha' }), alive('a', 0, { name: 'zed' })],
      1,
    );
    assert.deepEqual(
      m.members().map((x) => x.id),
      ['y', 'z', 'me', 'a'],
    );
  });
});

describe('membership messages', () => {
  it('acks a ping to the sender at its known address, refutes a buddy suspicion, and ignores pings for others', () => {
    const m = withPeers(['a']);
    m.receive('a', { t: 'ping', seq: 9, target: 'me', suspect: false }, 1);
    m.receive('stranger', { t: 'ping', seq: 10, target: 'me', suspect: false }, 1);
    m.receive('a', { t: 'ping', seq: 11, target: 'someone-else', suspect: false }, 1);
    let out = m.drain();
    assert.deepEqual(out.messages, [
      { to: 'a', address: 'a:7946', msg: { t: 'ack', seq: 9 } },
      { to: 'stranger', address: '', msg: { t: 'ack', seq: 10 } },
    ]);
    m.receive('a', { t: 'ping', seq: 12, target: 'me', suspect: true }, 2);
    out = m.drain();
    assert.equal(m.self().incarnation, 1);
    assert.deepEqual(flat(out), [{ t: 'alive', info: info('me'), inc: 1 }]);
    assert.deepEqual(sent(out, 'ack')[0]?.msg, { t: 'ack', seq: 12 });
  });

  it('relays a ping-req: forwards the ack under the original seq, or nacks at 80% of the probe timeout', () => {
    const m = withPeers(['a', 'b']);
    m.receive('a', { t: 'ping-req', seq: 77, target: 'b', targetAddress: 'b:1' }, 1000);
    let out = m.drain();
    const ping = out.messages[0];
    assert.ok(ping && ping.msg.t === 'ping');
    assert.equal(ping.to, 'b');
    assert.equal(ping.address, 'b:1');
    m.receive('b', { t: 'ack', seq: ping.msg.seq }, 1010);
    assert.deepEqual(m.drain().messages, [{ to: 'a', address: 'a:7946', msg: { t: 'ack', seq: 77 } }]);

    m.receive('a', { t: 'ping-req', seq: 78, target: 'b', targetAddress: 'b:1' }, 2000);
    out = m.drain();
    assert.ok((m.nextDeadlineMs() ?? Number.POSITIVE_INFINITY) <= 2160);
    m.tick(2159);
    assert.deepEqual(sent(m.drain(), 'nack'), []);
    m.tick(2160);
    assert.deepEqual(sent(m.drain(), 'nack'), [{ to: 'a', address: 'a:7946', msg: { t: 'nack', seq: 78 } }]);
  });

  it('bounds outstanding relays', () => {
    const m = withPeers(['a', 'b']);
    for (let i = 0; i < 300; i++)
      m.receive('a', { t: 'ping-req', seq: i, target: 'b', targetAddress: 'b:1' }, 1);
    assert.equal(sent(m.drain(), 'ping').length, 256);
    assert.equal(m.stats().relaysDropped, 44);
  });

  it('answers a push-pull with its state, merges theirs (remote failed → suspect), and never answers a reply', () => {
    const m = withPeers(['a', 'b']);
    m.receive(
      'a',
      {
        t: 'push-pull',
        join: true,
        reply: false,
        states: [
          { info: info('a'), status: 'alive', inc: 0 },
          { info: info('b'), status: 'failed', inc: 0 },
          { info: info('c'), status: 'alive', inc: 2 },
          { info: info('d'), status: 'failed', inc: 0 },
        ],
      },
      5,
    );
    const out = m.drain();
    const reply = out.messages[0];
    assert.ok(reply && reply.msg.t === 'push-pull');
    assert.equal(reply.msg.reply, true);
    assert.deepEqual(reply.msg.states.map((s) => s.info.id).sort(), ['a', 'b', 'me']);
    assert.equal(m.member('b')?.status, 'suspect');
    assert.equal(m.suspicion('b')?.from, 'a');
    assert.equal(m.member('c')?.status, 'alive');
    assert.equal(m.member('d'), undefined, 'a failed member we never knew is not added');
    assert.deepEqual(flat(out), [{ t: 'suspect', id: 'b', inc: 0, from: 'a' }, alive('c', 2)]);
    m.receive('a', { t: 'push-pull', join: false, reply: true, states: [] }, 6);
    assert.deepEqual(m.drain().messages, []);
  });

  it('leaves gracefully: left at inc+1, published and sent directly to a few, then silent', () => {
    const m = withPeers(['a', 'b', 'c', 'd', 'e', 'f'], { leaveDirectFanout: 4 });
    m.leave(100);
    const out = m.drain();
    assert.deepEqual(flat(out), [{ t: 'left', id: 'me', inc: 1 }]);
    const direct = sent(out, 'updates');
    assert.equal(direct.length, 4);
    assert.equal(new Set(direct.map((o) => o.to)).size, 4);
    assert.equal(m.self().status, 'left');
    assert.equal(out.events[0]?.previous, 'alive');
    assert.equal(m.nextDeadlineMs(), undefined);
    m.receive('a', { t: 'ping', seq: 1, target: 'me', suspect: true }, 200);
    m.receiveGossip('a', [{ t: 'left', id: 'me', inc: 5 }], 200);
    m.tick(100_000);
    assert.deepEqual(m.drain(), { messages: [], publish: [], events: [] });
    m.checkInvariants();
  });

  it('setMeta raises the incarnation and publishes alive', () => {
    const m = mk();
    m.setMeta({ services: 'web' }, 10);
    const out = m.drain();
    assert.equal(m.self().incarnation, 1);
    assert.deepEqual(flat(out), [{ t: 'alive', info: info('me', { meta: { services: 'web' } }), inc: 1 }]);
    assert.equal(out.events.length, 1);
    assert.throws(() => m.setMeta({ ['k'.repeat(65)]: 'v' }, 11), /meta/);
  });

  it('batches published updates by updatesPerMessageMax', () => {
    const m = mk({ updatesPerMessageMax: 2 });
    m.receive('x', { t: 'updates', updates: ['a', 'b', 'c', 'd', 'e'].map((p) => alive(p, 0)) }, 1);
    assert.deepEqual(
      m.drain().publish.map((b) => b.length),
      [2, 2, 1],
    );
  });

  it('rejects an invalid configuration or identity at construction', () => {
    const base = { self: info('me'), incarnation: 0, rng: new SeededRng(1), nowMs: 0 };
    assert.throws(
      () => new Membership({ ...base, config: { ...DEFAULT_MEMBERSHIP_CONFIG, probeIntervalMs: 0 } }),
      /probeIntervalMs/,
    );
    assert.throws(
      () => new Membership({ ...base, config: DEFAULT_MEMBERSHIP_CONFIG, incarnation: -1 }),
      /incarnation/,
    );
    assert.throws(() => new Membership({ ...base, self: info(''), config: DEFAULT_MEMBERSHIP_CONFIG }), /id/);
  });
});

describe('membership probing and local health', () => {
  /** Tick at each deadline until a message of type `t` appears; returns the output and the time. */
  function tickUntil(m: Membership, t: Message['t'], limitMs: number): { out: Output; at: number } {
    for (let i = 0; i < 1000; i++) {
      const at = m.nextDeadlineMs();
      assert.ok(at !== undefined && at <= limitMs, `no ${t} before ${limitMs}`);
      m.tick(at);
      const out = m.drain();
      if (sent(out, t).length > 0) return { out, at };
    }
    throw new Error('unreachable');
  }

  it('missed nacks raise local health; a successful probe lowers it', () => {
    const m = withPeers(['a', 'b', 'c', 'd', 'e']);
    const { out, at: t0 } = tickUntil(m, 'ping', 1000);
    const ping = sent(out, 'ping')[0];
    assert.ok(ping && ping.msg.t === 'ping');
    assert.equal(ping.msg.suspect, false);
    const { out: out2, at: t1 } = tickUntil(m, 'ping-req', 10_000);
    assert.equal(t1 - t0, 200, 'indirect after probeTimeoutMs');
    const reqs = sent(out2, 'ping-req');
    assert.equal(reqs.length, 3);
    assert.ok(reqs.every((r) => r.to !== ping.to && r.msg.t === 'ping-req' && r.msg.target === ping.to));
    // One relay answers with a nack, two stay silent: +2.
    m.receive(reqs[0]?.to ?? '', { t: 'nack', seq: ping.msg.seq }, t1 + 100);
    m.tick(t0 + 400);
    assert.equal(m.localHealth(), 2);
    assert.equal(m.member(ping.to)?.status, 'suspect');
    assert.equal(m.stats().probesFailed, 1);
    assert.equal(m.stats().suspicionsRaised, 1);
    const out3 = m.drain();
    assert.deepEqual(flat(out3), [{ t: 'suspect', id: ping.to, inc: 0, from: 'me' }]);
    // The next probe starts as the failed one's period ends, now scaled by health 2: a 600 ms
    // timeout within a 1200 ms period.
    const p2 = sent(out3, 'ping')[0];
    assert.ok(p2 && p2.msg.t === 'ping');
    assert.equal(m.nextDeadlineMs(), t0 + 400 + 600);
    m.receive(p2.to, { t: 'ack', seq: p2.msg.seq }, t0 + 405);
    assert.equal(m.localHealth(), 1);
    assert.equal(m.nextDeadlineMs(), t0 + 400 + 1200, 'the period keeps its length after an early ack');
  });

  it('probes every alive or suspect member once per round, telling a suspect it is suspected', () => {
    const peers = ['a', 'b', 'c', 'd'];
    const m = withPeers(peers);
    m.receiveGossip('x', [{ t: 'suspect', id: 'c', inc: 0, from: 'x' }], 0);
    m.receiveGossip('x', [{ t: 'failed', id: 'd', inc: 0, from: 'x' }], 0);
    const seen: string[] = [];
    for (let round = 0; round < 6; round++) {
      const { out, at } = tickUntil(m, 'ping', 100_000);
      const p = sent(out, 'ping')[0];
      assert.ok(p && p.msg.t === 'ping');
      assert.equal(p.msg.suspect, p.to === 'c');
      seen.push(p.to);
      m.receive(p.to, { t: 'ack', seq: p.msg.seq }, at + 1);
    }
    assert.deepEqual([...seen.slice(0, 3)].sort(), ['a', 'b', 'c']);
    assert.deepEqual([...seen.slice(3, 6)].sort(), ['a', 'b', 'c']);
  });

  it('clamps a clock that steps backwards', () => {
    const m = withPeers(['a']);
    m.tick(5000);
    m.tick(10);
    m.receiveGossip('x', [alive('b', 0)], 20);
    assert.equal(m.member('b')?.statusChangedAtMs, 5000);
  });
});

describe('join state exchange', () => {
  const states = (ids: string[]) => ids.map((id) => ({ info: info(id), status: 'alive' as const, inc: 0 }));

  it('a joining node does not republish the member list its seed sent (O(N²) gossip as a cluster forms)', () => {
    const m = mk();
    m.pushPull('seed', 'seed:7946', true, 0);
    m.drain();
    m.receive(
      'seed',
      { t: 'push-pull', join: true, reply: true, states: states(['seed', 'a', 'b', 'c']) },
      1,
    );
    const out = m.drain();
    assert.deepEqual(out.publish, []);
    assert.equal(m.members().filter((x) => x.status === 'alive').length, 5);
  });

  it('the seed republishes the joiner, and answers with join set so the joiner can tell', () => {
    const m = mk();
    m.receive('j', { t: 'push-pull', join: true, reply: false, states: states(['j']) }, 1);
    const out = m.drain();
    const reply = out.messages.find((o) => o.msg.t === 'push-pull');
    assert.ok(reply && reply.msg.t === 'push-pull' && reply.msg.join && reply.msg.reply);
    assert.deepEqual(
      out.publish.flat().map((u) => (u.t === 'alive' ? u.info.id : u.t)),
      ['j'],
    );
  });

  it('news from a periodic exchange is republished (a healed partition converges)', () => {
    const m = mk();
    m.receive('p', { t: 'push-pull', join: false, reply: true, states: states(['p', 'x']) }, 1);
    assert.deepEqual(
      m
        .drain()
        .publish.flat()
        .map((u) => (u.t === 'alive' ? u.info.id : u.t)),
      ['p', 'x'],
    );
  });
});
