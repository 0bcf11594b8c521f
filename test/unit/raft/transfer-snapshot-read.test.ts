// Leader transfer, snapshots with log compaction, and ReadIndex.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RaftNode } from '../../../src/core/raft/raft.js';
import type { Message } from '../../../src/core/raft/types.js';
import { handNode, SimRaft } from '../../helpers/sim-raft.js';

const abc = ['a', 'b', 'c'];

function cluster(seed: number, extra: Partial<ConstructorParameters<typeof SimRaft>[0]> = {}) {
  const sim = new SimRaft({ voters: abc, seed, ...extra });
  const lead = sim.electLeader();
  sim.tick(3);
  return { sim, lead, followers: abc.filter((x) => x !== lead) };
}

describe('raft leader transfer', () => {
  it('hands leadership to a caught-up voter at once (timeout-now)', () => {
    const { sim, lead, followers } = cluster(1);
    const to = followers[0] as string;
    assert.equal(
      sim.with(lead, (r) => r.transferLeader(to)),
      undefined,
    );
    assert.equal(sim.leader(), to);
    assert.equal(sim.status(to).term, 2);
    assert.equal(sim.status(lead).role, 'follower');
    assert.equal(sim.status(lead).leader, to);
  });

  it('catches a lagging target up first, refusing proposals meanwhile', () => {
    const { sim, lead, followers } = cluster(2);
    const to = followers[0] as string;
    sim.isolate(to);
    for (let i = 0; i < 5; i++) sim.propose(lead, `v${i}`);
    sim.with(lead, (r) => r.transferLeader(to));
    assert.equal(sim.status(lead).transferee, to);
    assert.deepEqual(sim.propose(lead, 'x'), { code: 'transferring' });
    sim.heal();
    sim.runUntil(() => sim.leader() === to, 20, 'transfer');
    assert.deepEqual(sim.appliedData(to).slice(0, 5), ['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('aborts a transfer that does not finish within an election timeout', () => {
    const { sim, lead, followers } = cluster(3);
    const to = followers[0] as string;
    sim.isolate(to);
    sim.propose(lead, 'v');
    sim.with(lead, (r) => r.transferLeader(to));
    sim.tick(sim.config.electionTicks + 1);
    assert.equal(sim.status(lead).transferee, '');
    assert.equal(sim.leader(), lead);
    assert.ok('index' in sim.propose(lead, 'y'));
  });

  it('refuses to transfer to a learner or a non-member, and on followers', () => {
    const sim = new SimRaft({ voters: ['a', 'b'], learners: ['l'], seed: 4 });
    const lead = sim.electLeader();
    sim.tick(2);
    const other = lead === 'a' ? 'b' : 'a';
    assert.equal(sim.with(lead, (r) => r.transferLeader('l'))?.code, 'invalid');
    assert.equal(sim.with(lead, (r) => r.transferLeader('zz'))?.code, 'invalid');
    assert.deepEqual(
      sim.with(other, (r) => r.transferLeader(lead)),
      { code: 'not-leader', leader: lead },
    );
  });
});

describe('raft snapshots', () => {
  it('compacts the log and sends a snapshot to a follower that lags behind it', () => {
    const { sim, lead, followers } = cluster(5);
    const f = followers[0] as string;
    sim.isolate(f);
    for (let i = 0; i < 30; i++) sim.propose(lead, `v${i}`);
    sim.tick(2);
    sim.compact(lead);
    const s = sim.status(lead);
    assert.equal(s.firstIndex, s.applied + 1);
    sim.propose(lead, 'tail');
    sim.heal();
    sim.runUntil(() => sim.appliedData(f).length === 31, 50, 'snapshot install');
    assert.deepEqual(sim.appliedData(f), sim.appliedData(lead));
    assert.equal(sim.status(f).firstIndex, s.applied + 1, 'the follower log starts after the snapshot');
    assert.equal(sim.status(lead).progress[f]?.state, 'replicate');
    // And it survives a restart from its persisted snapshot + entries.
    sim.crash(f);
    sim.restart(f);
    assert.equal(sim.status(f).applied, sim.status(lead).applied);
    sim.propose(lead, 'more');
    sim.tick(3);
    assert.equal(sim.appliedData(f).at(-1), 'more');
  });

  it('a lost snapshot is sent again', () => {
    const { sim, lead, followers } = cluster(6);
    const f = followers[0] as string;
    sim.isolate(f);
    for (let i = 0; i < 10; i++) sim.propose(lead, `v${i}`);
    sim.tick(2);
    sim.compact(lead);
    sim.heal();
    sim.cutLink(lead, f);
    sim.tick(sim.config.heartbeatTicks * 2);
    sim.heal();
    sim.runUntil(() => sim.appliedData(f).length === 10, 100, 'snapshot retry');
  });

  it('compaction refuses to pass the applied index', () => {
    const { sim, lead } = cluster(7);
    assert.throws(() => sim.raft(lead).compact(99, new Uint8Array(0)), /applied/);
  });

  it('a restarted leader with snapshot data can still bring a new learner up', () => {
    const sim = new SimRaft({ voters: ['a'], spares: ['d'], seed: 8 });
    sim.with('a', (r) => r.campaign());
    for (let i = 0; i < 10; i++) sim.propose('a', `v${i}`);
    sim.compact('a');
    sim.crash('a');
    sim.restart('a');
    sim.electLeader();
    sim.with('a', (r) => r.proposeConfChange({ op: 'add-learner', node: 'd' }));
    sim.runUntil(() => sim.appliedData('d').length === 10, 100, 'learner via snapshot');
    assert.equal(sim.status('d').role, 'learner');
  });
});

describe('raft ReadIndex', () => {
  it('a single voter answers at once with its commit index', () => {
    const sim = new SimRaft({ voters: ['a'], seed: 9 });
    sim.with('a', (r) => r.campaign());
    sim.propose('a', 'x');
    sim.with('a', (r) => r.readIndex('r1'));
    assert.deepEqual(sim.node('a').readStates, [{ ctx: 'r1', index: 2 }]);
  });

  it('answers after a quorum acknowledges a heartbeat', () => {
    const { sim, lead, followers } = cluster(10);
    sim.propose(lead, 'x');
    sim.cutLink(lead, followers[0] as string);
    sim.cutLink(lead, followers[1] as string);
    sim.with(lead, (r) => r.readIndex('r1'));
    assert.deepEqual(sim.node(lead).readStates, [], 'no quorum ack yet');
    sim.heal();
    sim.tick(sim.config.heartbeatTicks);
    assert.deepEqual(sim.node(lead).readStates, [{ ctx: 'r1', index: 2 }]);
  });

  it('a partitioned ex-leader never answers', () => {
    const { sim, lead } = cluster(11);
    sim.isolate(lead);
    sim.with(lead, (r) => r.readIndex('stale'));
    sim.tick(5 * sim.config.electionTicks);
    assert.deepEqual(sim.node(lead).readStates, []);
    assert.notEqual(sim.status(lead).role, 'leader');
    assert.deepEqual(sim.with(lead, (r) => r.readIndex('again'))?.code, 'not-leader');
  });

  it('waits for the new leader to commit an entry of its term', () => {
    // Driven by hand: a wins the election but its noop is not acknowledged yet.
    const a = handNode('a', abc);
    const b = handNode('b', abc);
    const out = (n: RaftNode): Message[] => {
      const rd = n.ready();
      n.advance(rd);
      return rd.messages;
    };
    a.campaign();
    for (const m of out(a)) if (m.to === 'b') b.step(m);
    for (const m of out(b)) a.step(m);
    assert.equal(a.status().role, 'leader');
    assert.equal(a.status().commit, 0);
    assert.equal(a.readIndex('r'), undefined);
    const appends = out(a).filter((m) => m.to === 'b');
    assert.ok(
      appends.every((m) => m.t === 'append'),
      'no heartbeat round before the first commit',
    );
    for (const m of appends) b.step(m);
    for (const m of out(b)) a.step(m);
    assert.equal(a.status().commit, 1);
    const hb = out(a).filter((m) => m.to === 'b' && m.t === 'heartbeat');
    assert.equal(hb.length, 1);
    assert.equal(hb[0]?.t === 'heartbeat' && hb[0].ctx, 'r');
    for (const m of hb) b.step(m);
    for (const m of out(b)) a.step(m);
    assert.deepEqual(a.ready().readStates, [{ ctx: 'r', index: 1 }]);
  });

  it('refuses reads on followers with the leader hint', () => {
    const { sim, lead, followers } = cluster(13);
    assert.deepEqual(
      sim.with(followers[0] as string, (r) => r.readIndex('x')),
      { code: 'not-leader', leader: lead },
    );
  });
});
