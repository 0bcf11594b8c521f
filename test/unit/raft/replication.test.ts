// Replication, commitment, proposals, crash/restart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RAFT_CONFIG, RaftNode } from '../../../src/core/raft/raft.js';
import type { Entry, Message } from '../../../src/core/raft/types.js';
import { SeededRng } from '../../../src/core/rand.js';
import { handNode, SimRaft } from '../../helpers/sim-raft.js';

const abc = ['a', 'b', 'c'];

function cluster(seed: number, extra: Partial<ConstructorParameters<typeof SimRaft>[0]> = {}) {
  const sim = new SimRaft({ voters: abc, seed, ...extra });
  const lead = sim.electLeader();
  sim.tick(3);
  return { sim, lead, followers: abc.filter((x) => x !== lead) };
}

describe('raft replication', () => {
  it('replicates and commits proposals on every node, in order', () => {
    const { sim, lead } = cluster(1);
    for (let i = 0; i < 10; i++) {
      const p = sim.propose(lead, `v${i}`);
      assert.ok('index' in p, JSON.stringify(p));
    }
    sim.tick(3);
    const want = Array.from({ length: 10 }, (_, i) => `v${i}`);
    for (const id of abc) assert.deepEqual(sim.appliedData(id), want);
    assert.equal(sim.status(lead).commit, 11);
  });

  it('refuses proposals on followers with the leader hint', () => {
    const { sim, lead, followers } = cluster(2);
    const r = sim.propose(followers[0] as string, 'x');
    assert.deepEqual(r, { code: 'not-leader', leader: lead });
    const fresh = new SimRaft({ voters: abc, seed: 2 });
    assert.deepEqual(fresh.propose('a', 'x'), { code: 'not-leader', leader: '' });
  });

  it('bounds uncommitted entries (backpressure)', () => {
    const { sim, lead, followers } = cluster(3, { config: { uncommittedEntriesMax: 5 } });
    for (const f of followers) sim.isolate(f);
    let accepted = 0;
    for (let i = 0; i < 10; i++) if ('index' in sim.propose(lead, `v${i}`)) accepted++;
    assert.equal(accepted, 5);
    assert.deepEqual(sim.propose(lead, 'more'), { code: 'overloaded' });
    sim.heal();
    sim.tick(5);
    assert.ok('index' in sim.propose(lead, 'after'));
  });

  it('a partitioned follower catches up after the partition heals', () => {
    const { sim, lead, followers } = cluster(4);
    const f = followers[0] as string;
    sim.isolate(f);
    for (let i = 0; i < 50; i++) sim.propose(lead, `v${i}`);
    sim.tick(5);
    assert.equal(sim.appliedData(followers[1] as string).length, 50);
    assert.equal(sim.appliedData(f).length, 0);
    sim.heal();
    sim.runUntil(() => sim.appliedData(f).length === 50, 50, 'catch up');
    assert.equal(sim.status(lead).progress[f]?.state, 'replicate');
  });

  it('batches appends (appendEntriesMax) and pipelines them (inflightMax)', () => {
    const { sim, lead, followers } = cluster(5, { config: { appendEntriesMax: 4, inflightMax: 2 } });
    const f = followers[0] as string;
    sim.isolate(f);
    for (let i = 0; i < 40; i++) sim.propose(lead, `v${i}`);
    sim.heal();
    sim.runUntil(() => sim.appliedData(f).length === 40, 100, 'catch up');
    // Never more than 2 un-acked appends of ≤ 4 entries each.
    assert.ok(sim.status(lead).progress[f]!.match >= 41);
  });

  it('a leader commits only entries of its own term by counting replicas', () => {
    // Leader appends entries while cut off; a new leader overwrites them; they never commit.
    const { sim, lead, followers } = cluster(6);
    sim.isolate(lead);
    sim.propose(lead, 'lost1');
    sim.propose(lead, 'lost2');
    const next = sim.runUntil(() => followers.some((f) => sim.status(f).role === 'leader'), 100);
    assert.ok(next >= 0);
    const nl = followers.find((f) => sim.status(f).role === 'leader') as string;
    sim.propose(nl, 'kept');
    sim.heal();
    sim.tick(20);
    for (const id of abc) assert.deepEqual(sim.appliedData(id), ['kept']);
  });

  it('restarts from persisted state: term, vote, log and commit survive a crash', () => {
    const { sim, lead, followers } = cluster(7);
    for (let i = 0; i < 5; i++) sim.propose(lead, `v${i}`);
    sim.tick(2);
    const f = followers[0] as string;
    const before = sim.status(f);
    sim.crash(f);
    sim.restart(f);
    const after = sim.status(f);
    assert.equal(after.term, before.term);
    assert.equal(after.vote, before.vote);
    assert.equal(after.lastIndex, before.lastIndex);
    assert.equal(after.commit, before.commit);
    assert.equal(after.applied, before.applied);
    assert.equal(after.role, 'follower');
    sim.propose(lead, 'after');
    sim.tick(3);
    assert.deepEqual(sim.appliedData(f), ['v0', 'v1', 'v2', 'v3', 'v4', 'after']);
  });

  it('the whole cluster crashes and restarts: committed entries survive and a leader returns', () => {
    const { sim, lead } = cluster(8);
    for (let i = 0; i < 5; i++) sim.propose(lead, `v${i}`);
    sim.tick(2);
    for (const id of abc) sim.crash(id);
    for (const id of abc) sim.restart(id);
    const nl = sim.electLeader();
    sim.propose(nl, 'again');
    sim.tick(3);
    for (const id of abc) assert.deepEqual(sim.appliedData(id), ['v0', 'v1', 'v2', 'v3', 'v4', 'again']);
  });

  it('the leader crashes: a new one is elected and nothing committed is lost', () => {
    const { sim, lead, followers } = cluster(9);
    for (let i = 0; i < 5; i++) sim.propose(lead, `v${i}`);
    sim.tick(1);
    sim.crash(lead);
    const nl = sim.runUntil(() => followers.some((f) => sim.status(f).role === 'leader'), 100);
    assert.ok(nl >= 0);
    const n = followers.find((f) => sim.status(f).role === 'leader') as string;
    sim.propose(n, 'x');
    sim.restart(lead);
    sim.tick(10);
    for (const id of abc) assert.deepEqual(sim.appliedData(id), ['v0', 'v1', 'v2', 'v3', 'v4', 'x']);
  });

  it('status reports progress on the leader only', () => {
    const { sim, lead, followers } = cluster(10);
    const s = sim.status(lead);
    assert.deepEqual(Object.keys(s.progress).sort(), abc);
    assert.equal(s.progress[lead]?.match, s.lastIndex);
    assert.deepEqual(sim.status(followers[0] as string).progress, {});
    assert.equal(s.firstIndex, 1);
    assert.deepEqual(s.conf, { voters: abc, learners: [] });
    assert.equal(s.transferee, '');
  });
});

describe('raft commit rule (Raft figure 8)', () => {
  it('never commits an entry of an earlier term by counting replicas', () => {
    const ent = (index: number, term: number): Entry => ({
      index,
      term,
      type: 'normal',
      data: new Uint8Array(0),
    });
    const mk = (id: string, entries: Entry[]) =>
      new RaftNode({
        id,
        config: { ...DEFAULT_RAFT_CONFIG, preVote: false, appendEntriesMax: 1 },
        rng: new SeededRng(1),
        restore: {
          hardState: { term: 3, vote: '', commit: 1 },
          snapshot: undefined,
          entries,
          initialConf: { voters: abc, learners: [] },
          applied: 0,
        },
      });
    // a holds 2@2 (replicated nowhere else), c holds a conflicting 2@3, b only 1@1.
    const a = mk('a', [ent(1, 1), ent(2, 2)]);
    const b = mk('b', [ent(1, 1)]);
    const out = (n: RaftNode): Message[] => {
      const rd = n.ready();
      n.advance(rd);
      return rd.messages;
    };
    const exchange = (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        for (const m of out(a)) if (m.to === 'b') b.step(m);
        for (const m of out(b)) a.step(m);
      }
    };
    a.campaign();
    exchange(1);
    assert.equal(a.status().role, 'leader');
    assert.equal(a.status().term, 4);
    // One entry per append: b first gets 2@2 alone. A majority (a, b) now holds 2@2, yet it is
    // not committed: c could still become leader with 2@3 and overwrite it.
    exchange(2);
    assert.equal(a.status().progress.b?.match, 2);
    assert.equal(a.status().commit, 1);
    // Once the leader's own 3@4 is on a majority, both commit.
    exchange(2);
    assert.equal(a.status().commit, 3);
  });

  // A three-voter cluster hand-driven: a is leader; messages to b and c are held by the test.
  function handDriven() {
    const nodes = new Map(abc.map((id) => [id, handNode(id, abc, 7)]));
    const n = (id: string) => nodes.get(id) as RaftNode;
    /** Take a Ready; persist it (advance) only when `persist` is true. */
    const take = (id: string, persist = true) => {
      const rd = n(id).ready();
      if (persist) n(id).advance(rd);
      return rd;
    };
    const deliver = (msgs: Message[]) => {
      for (const m of msgs) n(m.to).step(m);
    };
    n('a').campaign();
    for (let i = 0; i < 6 && abc.some((id) => n(id).hasReady()); i++)
      for (const id of abc) if (n(id).hasReady()) deliver(take(id).messages);
    assert.equal(n('a').status().role, 'leader');
    return { n, take, deliver };
  }

  it('the leader counts its own entries towards a quorum only once it has persisted them', () => {
    const { n, take, deliver } = handDriven();
    const commit0 = n('a').status().commit;
    const p = n('a').propose(new TextEncoder().encode('x'));
    assert.ok('index' in p);
    // The leader hands out its Ready but its disk write has not finished (no advance yet).
    const rd = take('a', false);
    assert.equal(rd.entries.length, 1);
    // Only b gets the append, persists it and answers.
    deliver(rd.messages.filter((m) => m.to === 'b'));
    deliver(take('b').messages);
    // One durable copy (b's) is not a quorum of three: nothing may commit, and a Ready must not
    // tell anyone a commit index that includes the entry.
    assert.equal(n('a').status().commit, commit0);
    const mid = n('a').ready();
    for (const m of mid.messages) if (m.t === 'append') assert.ok(m.commit < p.index, JSON.stringify(m));
    // The leader's write completes: now a and b hold it durably, and it commits.
    n('a').advance(rd);
    n('a').advance(mid);
    assert.equal(n('a').status().commit, p.index);
  });

  it('proposals made between two Readys reach each follower in one append, answered once', () => {
    const { n, take, deliver } = handDriven();
    for (let i = 0; i < 20; i++) assert.ok('index' in n('a').propose(new TextEncoder().encode(`v${i}`)));
    const rd = take('a');
    const appends = rd.messages.filter((m) => m.t === 'append');
    assert.deepEqual(appends.map((m) => m.to).sort(), ['b', 'c']);
    for (const m of appends) assert.equal(m.t === 'append' && m.entries.length, 20);
    deliver(rd.messages);
    const answers = [...take('b').messages, ...take('c').messages];
    assert.equal(answers.filter((m) => m.t === 'append-resp').length, 2);
    deliver(answers);
    // The commit goes out once per follower with the next Ready, not once per acknowledgement.
    const next = take('a');
    const carriers = next.messages.filter((m) => m.t === 'append');
    assert.deepEqual(carriers.map((m) => m.to).sort(), ['b', 'c']);
    for (const m of carriers) assert.equal(m.t === 'append' && m.commit, n('a').status().commit);
    assert.equal(next.committed.length, 20);
  });
});
