// Single-server membership changes: add learner, catch up, promote, remove (voter and leader).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimRaft } from '../../helpers/sim-raft.js';

const abc = ['a', 'b', 'c'];

function cluster(seed: number, spares: string[] = []) {
  const sim = new SimRaft({ voters: abc, spares, seed });
  const lead = sim.electLeader();
  sim.tick(3);
  return { sim, lead, followers: abc.filter((x) => x !== lead) };
}

describe('raft membership changes', () => {
  it('adds a learner, which catches up without voting, then promotes it to voter', () => {
    const { sim, lead } = cluster(1, ['d']);
    for (let i = 0; i < 20; i++) sim.propose(lead, `v${i}`);
    const add = sim.with(lead, (r) => r.proposeConfChange({ op: 'add-learner', node: 'd' }));
    assert.ok('index' in add);
    // Takes effect on append: the leader tracks d at once.
    assert.deepEqual(sim.status(lead).conf, { voters: abc, learners: ['d'] });
    assert.ok(sim.status(lead).progress.d !== undefined);
    sim.runUntil(() => sim.appliedData('d').length === 20, 100, 'learner catch-up');
    assert.equal(sim.status('d').role, 'learner');
    assert.deepEqual(sim.status('d').conf, { voters: abc, learners: ['d'] });
    const promote = sim.with(lead, (r) => r.proposeConfChange({ op: 'promote', node: 'd' }));
    assert.ok('index' in promote);
    sim.tick(3);
    for (const id of [...abc, 'd'])
      assert.deepEqual(sim.status(id).conf, { voters: [...abc, 'd'], learners: [] });
    assert.equal(sim.status('d').role, 'follower');
    // With 4 voters the quorum is 3: two followers down stops commits.
    const others = abc.filter((x) => x !== lead);
    sim.crash(others[0] as string);
    sim.propose(lead, 'with-d');
    sim.tick(2);
    assert.ok(sim.appliedData(lead).includes('with-d'), 'd counts toward the quorum');
  });

  it('refuses a second change while one is uncommitted, and invalid changes', () => {
    const { sim, lead, followers } = cluster(2, ['d', 'e']);
    for (const f of followers) sim.isolate(f);
    assert.ok('index' in sim.with(lead, (r) => r.proposeConfChange({ op: 'add-learner', node: 'd' })));
    assert.deepEqual(
      sim.with(lead, (r) => r.proposeConfChange({ op: 'add-learner', node: 'e' })),
      { code: 'conf-change-pending' },
    );
    sim.heal();
    sim.tick(3);
    const bad = [
      { op: 'add-learner', node: 'a' },
      { op: 'promote', node: 'a' },
      { op: 'promote', node: 'zz' },
      { op: 'remove', node: 'zz' },
    ] as const;
    for (const cc of bad) {
      const r = sim.with(lead, (x) => x.proposeConfChange(cc));
      assert.equal('code' in r && r.code, 'invalid', JSON.stringify(cc));
    }
    assert.deepEqual(
      sim.with(followers[0] as string, (r) => r.proposeConfChange({ op: 'remove', node: 'a' })),
      { code: 'not-leader', leader: lead },
    );
  });

  it('refuses to remove the last voter', () => {
    const sim = new SimRaft({ voters: ['a'], seed: 3 });
    sim.with('a', (r) => r.campaign());
    const r = sim.with('a', (x) => x.proposeConfChange({ op: 'remove', node: 'a' }));
    assert.equal('code' in r && r.code, 'invalid');
  });

  it('removes a follower: the rest commit without it and it never campaigns', () => {
    const { sim, lead, followers } = cluster(4);
    const gone = followers[0] as string;
    const keep = followers[1] as string;
    sim.with(lead, (r) => r.proposeConfChange({ op: 'remove', node: gone }));
    sim.tick(3);
    assert.deepEqual(sim.status(keep).conf.voters, [lead, keep].sort());
    assert.deepEqual(sim.status(lead).conf.voters, [lead, keep].sort());
    assert.equal(sim.status(lead).progress[gone], undefined);
    sim.tick(100);
    assert.equal(
      sim.status(gone).term,
      sim.status(lead).term,
      'the removed node (never told, as in etcd) only pre-votes: terms do not move',
    );
    assert.equal(sim.leader(), lead);
    sim.crash(keep);
    sim.propose(lead, 'x');
    sim.tick(3);
    assert.ok(!sim.appliedData(lead).includes('x'), 'quorum of {lead, keep} needs keep');
  });

  it('removes the leader: it steps down after the entry commits and the others elect a leader', () => {
    const { sim, lead, followers } = cluster(5);
    sim.propose(lead, 'before');
    const r = sim.with(lead, (x) => x.proposeConfChange({ op: 'remove', node: lead }));
    assert.ok('index' in r);
    sim.runUntil(() => sim.status(lead).role !== 'leader', 20, 'step down');
    assert.ok(sim.status(lead).commit >= r.index);
    const nl = sim.runUntil(() => followers.some((f) => sim.status(f).role === 'leader'), 200, 'new leader');
    assert.ok(nl >= 0);
    const n = followers.find((f) => sim.status(f).role === 'leader') as string;
    sim.propose(n, 'after');
    sim.tick(5);
    for (const f of followers) assert.deepEqual(sim.appliedData(f), ['before', 'after']);
    sim.tick(100);
    assert.equal(sim.status(lead).role, 'follower', 'the removed leader never campaigns again');
  });

  it('re-derives the configuration when an uncommitted conf entry is truncated', () => {
    const { sim, lead, followers } = cluster(6, ['d']);
    // The leader appends add-learner d while cut off; a new leader in the majority overwrites it.
    sim.isolate(lead);
    sim.with(lead, (r) => r.proposeConfChange({ op: 'add-learner', node: 'd' }));
    assert.deepEqual(sim.status(lead).conf.learners, ['d']);
    sim.runUntil(() => followers.some((f) => sim.status(f).role === 'leader'), 200, 'new leader');
    const n = followers.find((f) => sim.status(f).role === 'leader') as string;
    sim.propose(n, 'x');
    sim.heal();
    sim.tick(20);
    assert.deepEqual(sim.status(lead).conf, { voters: abc, learners: [] });
    assert.deepEqual(sim.appliedData(lead), ['x']);
  });

  it('restores the configuration from the log after a restart', () => {
    const { sim, lead, followers } = cluster(7, ['d']);
    sim.with(lead, (r) => r.proposeConfChange({ op: 'add-learner', node: 'd' }));
    sim.tick(5);
    const f = followers[0] as string;
    sim.crash(f);
    sim.restart(f);
    assert.deepEqual(sim.status(f).conf, { voters: abc, learners: ['d'] });
    sim.crash('d');
    sim.restart('d');
    assert.equal(sim.status('d').role, 'learner');
  });
});
