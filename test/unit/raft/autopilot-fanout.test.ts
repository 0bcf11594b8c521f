// The pure decisions shared by the agent and the simulator: autopilot's next membership change and
// what a node does with a published commit batch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AutopilotMember, FailedSince, nextConfChange } from '../../../src/core/raft/autopilot.js';
import { bootstrapLog } from '../../../src/core/raft/bootstrap.js';
import {
  type CommitBatch,
  GAP_WAIT_MS,
  HELD_BATCHES_MAX,
  HeldBatches,
  heartbeatBatch,
  LEADER_SILENT_MS,
  LeaderSilence,
  onCommitBatch,
  planBatches,
} from '../../../src/core/raft/fanout.js';
import { DEFAULT_RAFT_CONFIG, RaftNode } from '../../../src/core/raft/raft.js';
import type { Entry, RaftStatus } from '../../../src/core/raft/types.js';
import { SeededRng } from '../../../src/core/rand.js';
import { SimRaft } from '../../helpers/sim-raft.js';

function status(voters: string[], learners: string[] = [], match: Record<string, number> = {}): RaftStatus {
  const progress: RaftStatus['progress'] = {};
  for (const id of [...voters, ...learners]) {
    progress[id] = { match: match[id] ?? 10, next: 11, state: 'replicate', recentActive: true };
  }
  return {
    id: 'a',
    term: 2,
    vote: 'a',
    role: 'leader',
    leader: 'a',
    commit: 10,
    applied: 10,
    lastIndex: 10,
    firstIndex: 1,
    conf: { voters, learners },
    progress,
    transferee: '',
  };
}

function members(...ms: Array<[string, AutopilotMember['status'], string?]>): Map<string, AutopilotMember> {
  return new Map(ms.map(([id, s, zone]) => [id, { id, status: s, zone: zone ?? '' }]));
}

const policy = { self: 'a', voters: 3, deadVoterMs: 5_000 };

describe('autopilot', () => {
  it('adds a learner from a new zone first, then promotes it once caught up', () => {
    const ms = members(['a', 'alive', 'z1'], ['b', 'alive', 'z1'], ['c', 'alive', 'z2']);
    const fs = new FailedSince();
    const st = status(['a']);
    fs.observe(st, ms, 0);
    assert.deepEqual(nextConfChange(st, ms, fs, 0, policy), { op: 'add-learner', node: 'c' });
    const lagging = status(['a'], ['c'], { c: 3 });
    assert.deepEqual(nextConfChange(lagging, ms, fs, 0, policy), { op: 'add-learner', node: 'b' });
    const caughtUp = status(['a'], ['c'], { c: 10 });
    assert.deepEqual(nextConfChange(caughtUp, ms, fs, 0, policy), { op: 'promote', node: 'c' });
  });

  it('removes a voter only after it has looked failed for deadVoterMs, and never itself', () => {
    const ms = members(['a', 'failed'], ['b', 'alive'], ['c', 'failed']);
    const fs = new FailedSince();
    const st = status(['a', 'b', 'c']);
    fs.observe(st, ms, 1_000);
    assert.equal(nextConfChange(st, ms, fs, 1_000, policy), undefined);
    fs.observe(st, ms, 6_000);
    assert.deepEqual(nextConfChange(st, ms, fs, 6_000, policy), { op: 'remove', node: 'c' });
    // Healthy again: the clock starts over.
    const healed = members(['a', 'alive'], ['b', 'alive'], ['c', 'alive']);
    fs.observe(st, healed, 7_000);
    assert.equal(fs.get('c'), undefined);
  });

  it('removes a member that left at once', () => {
    const ms = members(['a', 'alive'], ['b', 'alive'], ['c', 'left']);
    const fs = new FailedSince();
    const st = status(['a', 'b', 'c']);
    fs.observe(st, ms, 0);
    assert.deepEqual(nextConfChange(st, ms, fs, 0, policy), { op: 'remove', node: 'c' });
  });
});

const entry = (index: number, term = 1, bytes = 10): Entry => ({
  index,
  term,
  type: 'normal',
  data: new Uint8Array(bytes),
});

describe('replica fan-out', () => {
  it('splits large commits into chained batches', () => {
    const entries = Array.from({ length: 1_200 }, (_, i) => entry(i + 5, i < 600 ? 1 : 2));
    const batches = planBatches(entries, 1, 'a', 2);
    assert.equal(batches.length, 3);
    assert.equal(batches[0]?.prevIndex, 4);
    for (let i = 1; i < batches.length; i++) {
      const prev = batches[i - 1]!;
      const last = prev.entries[prev.entries.length - 1]!;
      assert.equal(batches[i]?.prevIndex, last.index);
      assert.equal(batches[i]?.prevTerm, last.term);
    }
    assert.equal(batches.flatMap((b) => b.entries).length, 1_200);
  });

  it('appends a batch that continues its committed prefix, fetches on a gap, ignores what a member has', () => {
    const b = {
      seq: 1,
      leader: 'a',
      term: 2,
      prevIndex: 10,
      prevTerm: 2,
      commit: 12,
      entries: [entry(11), entry(12)],
    };
    const replica = { id: 'r', commit: 10, member: false };
    assert.equal(onCommitBatch(b, replica).do, 'append');
    assert.deepEqual(onCommitBatch(b, { ...replica, commit: 8 }), { do: 'fetch', peer: 'a' });
    assert.deepEqual(onCommitBatch(b, { ...replica, commit: 12, member: true }), { do: 'ignore' });
    // A voter that was removed while cut off still thinks it is a member; the leader no longer
    // replicates to it, so a batch beyond its commit must reach it (cluster-sim seed 1639558115).
    assert.equal(onCommitBatch(b, { ...replica }).do, 'append');
    const hb = { ...b, entries: [], prevIndex: 12 };
    assert.deepEqual(onCommitBatch(hb, { ...replica, commit: 12, member: true }), { do: 'ignore' });
    // A replica takes it as a heartbeat: nothing to apply, but it names the leader.
    assert.deepEqual(onCommitBatch(hb, { ...replica, commit: 12 }), {
      do: 'heartbeat',
      msg: { t: 'heartbeat', term: 2, from: 'a', to: 'r', commit: 12, ctx: '' },
    });
  });

  /** A replica's core restored from a data dir holding committed entries 1..5 of term 1, whose
   * configuration (voters a and b) does not list it: a replica restarted in a quiet cluster. */
  function restartedReplica(): RaftNode {
    const conf = (i: number, op: 'add-learner' | 'promote', node: string): Entry => ({
      index: i,
      term: 1,
      type: 'conf',
      data: new Uint8Array(0),
      conf: { op, node },
    });
    return new RaftNode({
      id: 'r',
      config: { ...DEFAULT_RAFT_CONFIG },
      rng: new SeededRng(1),
      restore: {
        hardState: { term: 1, vote: '', commit: 5 },
        snapshot: undefined,
        entries: [
          conf(1, 'add-learner', 'a'),
          conf(2, 'promote', 'a'),
          conf(3, 'add-learner', 'b'),
          conf(4, 'promote', 'b'),
          entry(5),
        ],
        initialConf: { voters: [], learners: [] },
        applied: 5,
      },
    });
  }

  /** What the agent and the simulator do with a published batch, as far as the core is concerned. */
  function deliver(node: RaftNode, b: Omit<CommitBatch, 'seq'>): void {
    const st = node.status();
    const member = st.conf.voters.includes(st.id) || st.conf.learners.includes(st.id);
    const action = onCommitBatch({ ...b, seq: 1 }, { id: st.id, commit: st.commit, member });
    if (action.do === 'append' || action.do === 'heartbeat') node.step(action.msg);
    while (node.hasReady()) node.advance(node.ready());
  }

  it('a replica restarted up to date learns the leader from its heartbeat, and a newer one', () => {
    const r = restartedReplica();
    assert.equal(r.status().leader, '', 'no leader right after a restart');
    // The leader's idle heartbeat: commit 5, nothing this replica lacks.
    deliver(r, heartbeatBatch('a', 1, 5));
    assert.equal(r.status().leader, 'a', 'a quiet cluster: the heartbeat names the leader');
    assert.equal(r.status().commit, 5);
    // Leadership moved while the replica was down (or since): a heartbeat at a higher term.
    deliver(r, heartbeatBatch('b', 3, 5));
    assert.deepEqual([r.status().leader, r.status().term], ['b', 3]);
    // A deposed leader's batch, late through gossip, changes nothing.
    deliver(r, heartbeatBatch('a', 1, 5));
    assert.deepEqual([r.status().leader, r.status().term], ['b', 3]);
    // Its leader went silent: it forgets it, and learns it again from its next heartbeat.
    r.forgetLeader();
    assert.equal(r.status().leader, '');
    deliver(r, heartbeatBatch('b', 3, 5));
    assert.equal(r.status().leader, 'b');
  });

  it('a replica forgets a leader that published nothing for LEADER_SILENT_MS', () => {
    const s = new LeaderSilence();
    assert.equal(s.silent('', 0), false, 'no leader: nothing to forget');
    s.heard('a', 1_000);
    assert.equal(s.silent('a', 1_000 + LEADER_SILENT_MS - 1), false);
    s.heard('a', 2_000);
    assert.equal(s.silent('a', 2_000 + LEADER_SILENT_MS - 1), false, 'each batch restarts the clock');
    assert.equal(s.silent('a', 2_000 + LEADER_SILENT_MS), true);
    // A leader learned otherwise (a fetch answer) gets a full interval from when it is first seen.
    assert.equal(s.silent('b', 10_000), false);
    assert.equal(s.silent('b', 10_000 + LEADER_SILENT_MS - 1), false);
    assert.equal(s.silent('b', 10_000 + LEADER_SILENT_MS), true);
  });
});

describe('bootstrap configuration in the log', () => {
  it('an agent added after bootstrap counts the bootstrap voter (found by cluster-sim seed 1)', () => {
    const b = bootstrapLog(['a']);
    const sim = new SimRaft({ voters: [], spares: ['a', 'b', 'c'], seed: 3 });
    // Restart 'a' from a disk that holds the bootstrap entries, as the agent writes them.
    sim.crash('a');
    const a = sim.node('a');
    a.disk.entries = b.entries;
    a.disk.hardState = b.hardState;
    sim.restart('a');
    sim.with('a', (r) => r.campaign());
    assert.equal(sim.status('a').role, 'leader');
    for (const id of ['b', 'c']) {
      sim.with('a', (r) => r.proposeConfChange({ op: 'add-learner', node: id }));
      sim.tick(5);
      sim.with('a', (r) => r.proposeConfChange({ op: 'promote', node: id }));
      sim.tick(5);
    }
    for (const id of ['a', 'b', 'c']) assert.deepEqual(sim.status(id).conf.voters, ['a', 'b', 'c'], id);
    // Removing the bootstrap voter is a valid change everywhere.
    sim.with(sim.leader() as string, (r) => r.transferLeader('b'));
    sim.tick(20);
    sim.with('b', (r) => r.proposeConfChange({ op: 'remove', node: 'a' }));
    sim.tick(10);
    for (const id of ['b', 'c']) assert.deepEqual(sim.status(id).conf.voters, ['b', 'c'], id);
  });

  it('writes sorted, committed conf entries at term 1 and refuses bad voter lists', () => {
    const b = bootstrapLog(['c', 'a']);
    assert.deepEqual(
      b.entries.map((e) => `${e.index}@${e.term} ${e.conf?.op} ${e.conf?.node}`),
      ['1@1 add-learner a', '2@1 promote a', '3@1 add-learner c', '4@1 promote c'],
    );
    assert.deepEqual(b.hardState, { term: 1, vote: '', commit: 4 });
    assert.throws(() => bootstrapLog([]), /at least one voter/);
    assert.throws(() => bootstrapLog(['a', 'a']), /twice/);
  });
});

describe('held batches', () => {
  const batch = (prevIndex: number, n: number) => ({
    seq: prevIndex,
    leader: 'a',
    term: 1,
    prevIndex,
    prevTerm: 1,
    commit: prevIndex + n,
    entries: Array.from({ length: n }, (_, i) => entry(prevIndex + i + 1)),
  });

  it('releases batches that arrived out of order once the gap closes, without fetching', () => {
    const h = new HeldBatches();
    h.hold(batch(20, 5), 0);
    h.hold(batch(15, 5), 1);
    assert.equal(h.next(10), undefined, 'nothing continues index 10');
    assert.equal(h.shouldFetch(50), false);
    // The missing batch (10..15) arrived and was stepped: commit is 15.
    assert.equal(h.next(15)?.prevIndex, 15);
    assert.equal(h.next(20)?.prevIndex, 20);
    assert.equal(h.next(25), undefined);
    assert.equal(h.shouldFetch(10_000), false, 'caught up: no gap');
  });

  it('asks for a fetch when a gap stays open for GAP_WAIT_MS, and bounds what it holds', () => {
    const h = new HeldBatches();
    for (let i = 0; i < HELD_BATCHES_MAX + 10; i++) h.hold(batch(100 + 5 * i, 5), 0);
    assert.equal(h.size, HELD_BATCHES_MAX);
    assert.equal(h.shouldFetch(GAP_WAIT_MS - 1), false);
    assert.equal(h.shouldFetch(GAP_WAIT_MS), true);
    h.fetched(500);
    assert.equal(h.shouldFetch(500 + GAP_WAIT_MS - 1), false, 'timed afresh after a fetch');
    // A heartbeat alone (no entries) also opens a gap.
    const hb = new HeldBatches();
    hb.hold({ ...batch(30, 0), commit: 30 }, 0);
    assert.equal(hb.size, 0);
    assert.equal(hb.shouldFetch(GAP_WAIT_MS), true);
  });
});
