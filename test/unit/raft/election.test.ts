// Elections: bootstrap, pre-vote, check-quorum, and what a partition does to terms.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimRaft } from '../../helpers/sim-raft.js';

const abc = ['a', 'b', 'c'];

describe('raft elections', () => {
  it('a single-node cluster elects itself and commits a proposal', () => {
    const sim = new SimRaft({ voters: ['a'], seed: 1 });
    sim.with('a', (r) => r.campaign());
    assert.equal(sim.status('a').role, 'leader');
    assert.equal(sim.status('a').term, 1);
    const p = sim.propose('a', 'x');
    assert.deepEqual(p, { index: 2, term: 1 });
    assert.equal(sim.status('a').commit, 2);
    assert.deepEqual(sim.appliedData('a'), ['x']);
  });

  it('a single node also elects itself by timing out', () => {
    const sim = new SimRaft({ voters: ['a'], seed: 2 });
    const ticks = sim.runUntil(() => sim.leader() === 'a', 100);
    assert.ok(ticks >= sim.config.electionTicks && ticks <= 2 * sim.config.electionTicks, `${ticks}`);
  });

  it('three nodes elect exactly one leader; the others follow it', () => {
    const sim = new SimRaft({ voters: abc, seed: 3 });
    const lead = sim.electLeader();
    sim.tick(5);
    for (const id of abc) {
      const s = sim.status(id);
      assert.equal(s.leader, lead);
      assert.equal(s.term, 1);
      assert.equal(s.role, id === lead ? 'leader' : 'follower');
      // The new leader's noop commits everywhere.
      assert.equal(s.commit, 1);
    }
  });

  it('the first leader is the one whose timer fires first (randomised timeouts in [n, 2n))', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const sim = new SimRaft({ voters: ['a', 'b', 'c', 'd', 'e'], seed });
      const ticks = sim.runUntil(() => sim.leader() !== undefined, 200);
      assert.ok(ticks <= 2 * sim.config.electionTicks + 2, `seed ${seed}: ${ticks} ticks`);
    }
  });

  it('a leader cut off from the quorum steps down (check-quorum); the majority elects a new one', () => {
    const sim = new SimRaft({ voters: abc, seed: 4 });
    const old = sim.electLeader();
    const rest = abc.filter((x) => x !== old);
    sim.isolate(old);
    sim.runUntil(() => sim.status(old).role !== 'leader', 3 * sim.config.electionTicks, 'step down');
    const fresh = sim.runUntil(
      () => rest.some((id) => sim.status(id).role === 'leader'),
      5 * sim.config.electionTicks,
      'new leader',
    );
    assert.ok(fresh >= 0);
    const newLead = rest.find((id) => sim.status(id).role === 'leader') as string;
    // Pre-vote: the isolated old leader never got a quorum, so its term did not move.
    sim.tick(50);
    assert.equal(sim.status(old).term, 1);
    const term = sim.status(newLead).term;
    assert.ok(term >= 2);
    sim.heal();
    sim.tick(10);
    assert.equal(sim.status(old).leader, newLead);
    assert.equal(sim.status(old).term, term);
    assert.equal(sim.leader(), newLead);
  });

  it('a partitioned follower rejoining does not disrupt the leader (pre-vote keeps terms)', () => {
    const sim = new SimRaft({ voters: abc, seed: 5 });
    const lead = sim.electLeader();
    const f = abc.find((x) => x !== lead) as string;
    sim.isolate(f);
    sim.tick(100);
    assert.equal(sim.status(f).term, 1, 'pre-vote: no term inflation while isolated');
    assert.notEqual(sim.status(f).role, 'leader');
    sim.heal();
    sim.tick(20);
    assert.equal(sim.leader(), lead);
    assert.equal(sim.status(lead).term, 1);
    assert.equal(sim.status(f).leader, lead);
  });

  it('without pre-vote, the same rejoin does disrupt (the term grows while isolated)', () => {
    const sim = new SimRaft({ voters: abc, seed: 6, config: { preVote: false } });
    const lead = sim.electLeader();
    const f = abc.find((x) => x !== lead) as string;
    sim.isolate(f);
    sim.tick(100);
    assert.ok(sim.status(f).term > 1);
  });

  it('followers in lease ignore a vote request (check-quorum leader lease)', () => {
    const sim = new SimRaft({ voters: abc, seed: 7 });
    const lead = sim.electLeader();
    const f = abc.find((x) => x !== lead) as string;
    const other = abc.find((x) => x !== lead && x !== f) as string;
    sim.with(other, (r) =>
      r.step({ t: 'vote', term: 5, from: f, to: other, lastIndex: 100, lastTerm: 5, transfer: false }),
    );
    assert.equal(sim.status(other).term, 1, 'in lease: the vote is ignored, term unchanged');
    assert.equal(sim.status(other).vote, lead);
  });

  it('learners never campaign', () => {
    const sim = new SimRaft({ voters: ['a'], learners: ['l'], seed: 8 });
    sim.isolate('a');
    sim.tick(200);
    assert.equal(sim.status('l').role, 'learner');
    assert.equal(sim.status('l').term, 0);
  });
});
