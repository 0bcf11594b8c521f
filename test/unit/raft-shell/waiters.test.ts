// RaftWaiters: proposals, reads and index waits are answered when their outcome arrives, fail or
// resolve false after their timeout, refuse beyond their bound, and are all answered at stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeshError } from '../../../src/api/types.js';
import { RaftWaiters, WAITERS_LIMITS } from '../../../src/raft/waiters.js';

describe('RaftWaiters', () => {
  it('answers a proposal with its result, or refuses it when another term took its index', async () => {
    const w = new RaftWaiters(5_000);
    const mine = w.proposal(7, 3);
    const lost = w.proposal(8, 3);
    w.proposalApplied(7, 3, { ok: true, index: 7 });
    w.proposalApplied(8, 4, { ok: true, index: 8 });
    assert.deepEqual(await mine, { ok: true, index: 7 });
    await assert.rejects(lost, /leadership changed/);
  });

  it('times out proposals and reads with unavailable, index waits with false', async () => {
    const w = new RaftWaiters(20);
    await assert.rejects(
      w.proposal(1, 1),
      (e: MeshError) => e.code === 'unavailable' && /20 ms/.test(e.message),
    );
    await assert.rejects(w.read('r1'), /no quorum confirmed/);
    assert.equal(await w.untilApplied(5, 20), false);
  });

  it('resolves index waits once the applied index reaches them', async () => {
    const w = new RaftWaiters(5_000);
    const a = w.untilApplied(3, 5_000);
    const b = w.untilApplied(9, 5_000);
    w.appliedUpTo(4);
    assert.equal(await a, true);
    w.readConfirmed('nobody', 1); // unknown read: ignored
    w.rejectAll(new MeshError('unavailable', 'stopping'));
    assert.equal(await b, false);
  });

  it('bounds proposals in flight and answers all of them at stop', async () => {
    const w = new RaftWaiters(60_000);
    const all = Array.from({ length: WAITERS_LIMITS.proposalsMax }, (_, i) => w.proposal(i + 1, 1));
    assert.match(w.checkProposalRoom()?.message ?? '', /too many writes/);
    assert.equal(w.checkReadRoom(), undefined);
    const read = w.read('r');
    w.rejectAll(new MeshError('unavailable', 'the agent is stopping'));
    const settled = await Promise.allSettled([...all, read]);
    assert.ok(settled.every((s) => s.status === 'rejected'));
    assert.equal(w.checkProposalRoom(), undefined);
  });
});
